"""The epoch loop every training phase shares: resume, instability guard, per-epoch log and checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from stprivacy.config import TrainConfig
from stprivacy.training import distributed
from stprivacy.training.checkpoint import checkpoint_exists, load_modules, load_state, save_checkpoint
from stprivacy.training.guard import Diverged, TrainingDivergedError, rollback
from stprivacy.training.run_dir import RunDir
from stprivacy.training.state import restore_trainer, trainer_state


def run_epochs(*, phase: int | str, epochs: int, run: RunDir, stem: Path, modules: dict, optimizers: dict,
               schedulers: dict, generator: torch.Generator, tc: TrainConfig,
               epoch_fn: Callable[[int], dict[str, float]],
               before_epoch: Callable[[int], None] | None = None, lr_option: str = "train.lr") -> None:
    """Run ``epoch_fn(epoch)`` for the epochs not yet in the checkpoint ``stem``.

    A checkpoint of the starting point is written first, so even the first epoch has a rollback target. When
    ``epoch_fn`` raises :class:`Diverged`, training goes back to the last checkpoint with a lower learning rate.
    """
    epoch = 0
    resume = checkpoint_exists(stem)
    distributed.barrier()  # every rank has looked before rank 0 may write the first checkpoint
    if resume:
        load_modules(stem, modules)
        epoch = restore_trainer(load_state(stem), optimizers, schedulers, generator)
    else:
        _save(stem, modules, trainer_state(0, optimizers, schedulers, generator), {"phase": phase, "epoch": 0})
    distributed.decorrelate_rng()
    rollbacks = 0
    while epoch < epochs:
        if before_epoch is not None:
            before_epoch(epoch)
        try:
            sums = epoch_fn(epoch)
        except Diverged as exc:
            rollbacks += 1
            if rollbacks > tc.max_rollbacks:
                raise TrainingDivergedError(f"phase {phase} diverged {rollbacks} times ({exc}); lower {lr_option}"
                                            + (" or train.lambda_p" if phase == 2 else "")) from None
            epoch = rollback(stem, modules, optimizers, schedulers, generator, tc.rollback_lr_factor)
            distributed.decorrelate_rng()
            run.log("rollback", phase=phase, epoch=epoch + 1, reason=str(exc), lr_factor=tc.rollback_lr_factor)
            continue
        epoch += 1
        run.log("epoch", phase=phase, epoch=epoch, **{k: round(v, 5) for k, v in sums.items()})
        _save(stem, modules, trainer_state(epoch, optimizers, schedulers, generator), {"phase": phase, "epoch": epoch})


def _save(stem: Path, modules: dict, state: dict, metadata: dict) -> None:
    """Rank 0 writes; every rank waits until the checkpoint is complete (a rollback reads it on every rank)."""
    if distributed.current().is_main:
        save_checkpoint(stem, modules, state, metadata)
    distributed.barrier()
