"""Phase 1, initialization: the anonymizer classifies actions itself through its head on the kept tokens.

    L = L_spars + CE_action  (+ phase1_reconstruction * L1(kept tubelets of the output, of the input))

The reconstruction term is this project's option (0 in the paper's presets): the paper trains the pixel head only in
phase 2; starting it near the identity lets short CPU runs reach a useful anonymizer.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from stprivacy.config import ExperimentConfig
from stprivacy.data.clips import ClipSet
from stprivacy.losses import action_loss, keep_ratio_loss, masked_reconstruction_loss
from stprivacy.models import STPrivacy
from stprivacy.training.batches import iterate_batches
from stprivacy.training.checkpoint import checkpoint_exists, load_modules, load_state, save_checkpoint
from stprivacy.training.guard import Diverged, TrainingDivergedError, check_losses, rollback
from stprivacy.training.optim import make_optimizer, warmup_cosine
from stprivacy.training.run_dir import RunDir
from stprivacy.training.state import restore_trainer, trainer_state


def phase1_step(model: STPrivacy, batch: dict, recon_weight: float) -> dict[str, torch.Tensor]:
    out = model(batch["video"])
    losses = {
        "spars": keep_ratio_loss(out.decisions, model.stage_ratios()),
        "ce": action_loss(out.action_logits.float(), batch["action"]),
    }
    if recon_weight:
        losses["recon"] = recon_weight * masked_reconstruction_loss(out.video, batch["video"], out.keep_mask,
                                                                    model.grid.tubelet)
    losses["total"] = sum(losses.values())
    return losses


def train_phase1(model: STPrivacy, train: ClipSet, cfg: ExperimentConfig, run: RunDir) -> STPrivacy:
    """Train (or resume) phase 1; returns the model, its checkpoint saved as ``checkpoints/phase1``."""
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    model.to(device).train()
    steps = max(1, -(-len(train) // tc.batch_size))
    opts = {"anonymizer": make_optimizer(model, tc.peak_lr(), tc.weight_decay)}
    scheds = {"anonymizer": warmup_cosine(opts["anonymizer"], tc.phase1_epochs * steps, int(tc.warmup_epochs * steps))}
    gen = torch.Generator().manual_seed(cfg.seed)
    stem, modules = run.checkpoint("phase1"), {"anonymizer": model}
    epoch = 0
    if checkpoint_exists(stem):
        load_modules(stem, modules)
        epoch = restore_trainer(load_state(stem), opts, scheds, gen)
    else:  # the rollback target of the first epoch
        save_checkpoint(stem, modules, trainer_state(0, opts, scheds, gen), {"phase": 1, "epoch": 0})
    rollbacks = 0
    while epoch < tc.phase1_epochs:
        try:
            sums = _phase1_epoch(model, train, cfg, opts["anonymizer"], scheds["anonymizer"], gen, epoch, steps)
        except Diverged as exc:
            rollbacks += 1
            if rollbacks > tc.max_rollbacks:
                raise TrainingDivergedError(f"phase 1 diverged {rollbacks} times ({exc}); lower train.lr") from None
            epoch = rollback(stem, modules, opts, scheds, gen, tc.rollback_lr_factor)
            run.log("rollback", phase=1, epoch=epoch + 1, reason=str(exc), lr_factor=tc.rollback_lr_factor)
            continue
        epoch += 1
        run.log("epoch", phase=1, epoch=epoch, **{k: round(v, 5) for k, v in sums.items()})
        save_checkpoint(stem, modules, trainer_state(epoch, opts, scheds, gen), {"phase": 1, "epoch": epoch})
    return model


def _phase1_epoch(model, train, cfg, opt, sched, gen, epoch, steps) -> dict[str, float]:
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    sums: dict[str, float] = {}
    bar = tqdm(iterate_batches(train, tc.batch_size, shuffle=True, generator=gen, hflip=cfg.data.hflip), total=steps,
               desc=f"phase 1 epoch {epoch + 1}/{tc.phase1_epochs}", leave=False, disable=not runtime.progress)
    for batch in bar:
        batch = {k: v.to(device) for k, v in batch.items()}
        with runtime.autocast(device):
            losses = phase1_step(model, batch, tc.phase1_reconstruction)
        check_losses(losses)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        sched.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v.item() / steps
        bar.set_postfix(ce=f"{losses['ce'].item():.3f}", spars=f"{losses['spars'].item():.4f}")
    return sums
