"""The instability guard: a NaN, an inf or a diverging loss rolls training back to the last good checkpoint with a
lower learning rate, logs it, and goes on; after ``max_rollbacks`` it stops with a clear message."""

from __future__ import annotations

import math

import torch

from stprivacy.errors import STPrivacyError
from stprivacy.training.checkpoint import load_modules, load_state
from stprivacy.training.state import restore_trainer


class Diverged(Exception):
    """Raised inside an epoch when a loss is unusable; caught by the phase loop."""


class TrainingDivergedError(STPrivacyError, RuntimeError):
    """Training kept diverging after the allowed number of rollbacks."""


def check_losses(losses: dict[str, torch.Tensor | float], limits: dict[str, float] | None = None) -> None:
    for name, value in losses.items():
        v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        if not math.isfinite(v):
            raise Diverged(f"{name} is {v}")
        if limits and name in limits and v > limits[name]:
            raise Diverged(f"{name} = {v:.3g} exceeds its limit {limits[name]:.3g}")


def rollback(stem, modules: dict, optimizers: dict, schedulers: dict, generator: torch.Generator,
             lr_factor: float) -> int:
    """Restore the last checkpoint and scale every learning rate by ``lr_factor``; returns the epoch to redo."""
    load_modules(stem, modules)
    epoch = restore_trainer(load_state(stem), optimizers, schedulers, generator)
    for sched in schedulers.values():
        sched.base_lrs = [lr * lr_factor for lr in sched.base_lrs]
        for group in sched.optimizer.param_groups:
            group["lr"] *= lr_factor
    return epoch
