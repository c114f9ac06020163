"""Training a recognizer (actions) or an attacker (private attributes) on a fixed set of clips.

Used by phase 3 (fresh recognizers on anonymized clips), by the baselines and by the raw-video reference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stprivacy.data.clips import ClipSet
from stprivacy.losses import action_loss, privacy_loss
from stprivacy.runtime import RuntimeConfig
from stprivacy.training import distributed
from stprivacy.training.batches import all_views, epoch_batches
from stprivacy.training.optim import make_optimizer, warmup_cosine

log = logging.getLogger(__name__)

TASKS = ("action", "privacy")


@dataclass
class FitConfig:
    """Optimisation of one recognizer. ``lr`` is the peak learning rate actually used."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    #: Random horizontal flips (the dataset's ``data.hflip``).
    hflip: bool = False


def task_loss(task: str, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if task == "action":
        return action_loss(logits, batch["action"])
    if task == "privacy":
        return privacy_loss(logits, batch["attributes"])
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def fit(model: nn.Module, clips: ClipSet, task: str, cfg: FitConfig, runtime: RuntimeConfig, *, seed: int = 0,
        use_mask: bool = False, desc: str = "", on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train ``model`` on ``clips`` for ``task``; returns one dict of metrics per epoch."""
    device = runtime.torch_device()
    group = distributed.current()
    model.to(device).train()
    distributed.broadcast_module(model, group)
    distributed.decorrelate_rng(group)
    forward = runtime.compiled(model)
    steps_per_epoch = max(1, -(-len(clips) // cfg.batch_size))
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
    sched = warmup_cosine(opt, cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch))
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(cfg.epochs):
        def loss_fn(part):
            with runtime.autocast(device):
                logits = forward(part["video"], part.get("keep_mask") if use_mask else None)
            return {"total": task_loss(task, logits.float(), part)}, None

        total, count = 0.0, 0
        with epoch_batches(clips, cfg.batch_size, generator=gen, hflip=cfg.hflip, device=device,
                           desc=f"{desc} {task} {epoch + 1}/{cfg.epochs}", progress=runtime.progress,
                           group=group, draw=(4, epoch)) as bar:
            for batch in bar:
                opt.zero_grad(set_to_none=True)
                losses, _ = distributed.backward_parts(batch, loss_fn, device, runtime.accumulate, group)
                if not math.isfinite(losses["total"]):
                    raise FloatingPointError(f"{desc}: non-finite {task} loss at epoch {epoch + 1}")
                distributed.sync_gradients([model], group)
                opt.step()
                sched.step()
                total += losses["total"] * len(batch["video"])
                count += len(batch["video"])
                bar.set_postfix(loss=f"{total / count:.3f}")
        distributed.broadcast_module(model, group)  # BatchNorm statistics: rank 0's
        record = {"epoch": epoch + 1, "task": task, "loss": total / max(count, 1)}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history


@torch.no_grad()
def predict(model: nn.Module, clips: ClipSet, task: str, runtime: RuntimeConfig, *, batch_size: int = 64,
            use_mask: bool = False) -> np.ndarray:
    """Per-video scores averaged over its views: softmax probabilities (action) or sigmoid probabilities (privacy)."""
    device = runtime.torch_device()
    model.to(device).eval()
    share = distributed.shard(len(clips))  # each rank scores its share of the videos
    out = [torch.empty(0)]
    for idx, batch in all_views(clips, batch_size, share):
        batch = {k: v.to(device) for k, v in batch.items()}
        with runtime.autocast(device):
            logits = model(batch["video"], batch.get("keep_mask") if use_mask else None).float()
        probs = logits.softmax(-1) if task == "action" else logits.sigmoid()
        out.append(probs.reshape(len(idx), clips.views, -1).mean(1).cpu())
    return distributed.gather_rows(torch.cat(out)).numpy()
