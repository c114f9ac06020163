"""Phase 1, initialization: the anonymizer classifies actions itself through its head on the kept tokens.

    L = L_spars + CE_action  (+ phase1_reconstruction * L1(kept tubelets of the output, of the input))

The reconstruction term is this project's option (0 in the paper's presets): the paper trains the pixel head only in
phase 2; starting it near the identity lets short CPU runs reach a useful anonymizer.
"""

from __future__ import annotations

import torch

from stprivacy.config import ExperimentConfig
from stprivacy.data.clips import ClipSet
from stprivacy.losses import action_loss, keep_ratio_loss, masked_reconstruction_loss
from stprivacy.models import STPrivacy
from stprivacy.training import distributed
from stprivacy.training.batches import epoch_batches
from stprivacy.training.epochs import run_epochs
from stprivacy.training.optim import make_optimizer, warmup_cosine
from stprivacy.training.run_dir import RunDir


def phase1_step(model, stage_ratios: list[float], tubelet: tuple[int, int, int], batch: dict,
                recon_weight: float) -> dict[str, torch.Tensor]:
    """The phase-1 losses of one batch; ``model`` is the anonymizer (or its compiled forward)."""
    out = model(batch["video"])
    losses = {
        "spars": keep_ratio_loss(out.decisions, stage_ratios),
        "ce": action_loss(out.action_logits.float(), batch["action"]),
    }
    if recon_weight:
        losses["recon"] = recon_weight * masked_reconstruction_loss(out.video, batch["video"], out.keep_mask, tubelet)
    losses["total"] = sum(losses.values())
    return losses


def train_phase1(model: STPrivacy, train: ClipSet, cfg: ExperimentConfig, run: RunDir) -> STPrivacy:
    """Train (or resume) phase 1; returns the model, its checkpoint saved as ``checkpoints/phase1``."""
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    model.to(device).train()
    distributed.broadcast_module(model)
    steps = max(1, -(-len(train) // tc.batch_size))
    opts = {"anonymizer": make_optimizer(model, tc.peak_lr(), tc.weight_decay, tc.backbone_lr_scale, tc.layer_decay)}
    scheds = {"anonymizer": warmup_cosine(opts["anonymizer"], tc.phase1_epochs * steps, int(tc.warmup_epochs * steps))}
    gen = torch.Generator().manual_seed(cfg.seed)
    forward = runtime.compiled(model)  # once per phase: compiling is slow
    run_epochs(phase=1, epochs=tc.phase1_epochs, run=run, stem=run.checkpoint("phase1"),
               modules={"anonymizer": model}, optimizers=opts, schedulers=scheds, generator=gen, tc=tc,
               epoch_fn=lambda epoch: _phase1_epoch(model, forward, train, cfg, opts["anonymizer"],
                                                    scheds["anonymizer"], gen, epoch, steps),
               before_epoch=lambda epoch: freeze_backbone(model, epoch < tc.freeze_backbone_epochs))
    freeze_backbone(model, False)
    return model


def freeze_backbone(model: STPrivacy, frozen: bool) -> None:
    """Stop (or resume) training the ViT trunk; the token scorers and heads keep learning."""
    model.vit.requires_grad_(not frozen)


def _phase1_epoch(model, forward, train, cfg, opt, sched, gen, epoch, steps) -> dict[str, float]:
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    sums: dict[str, float] = {}
    with epoch_batches(train, tc.batch_size, generator=gen, hflip=cfg.data.hflip, device=device,
                       desc=f"phase 1 epoch {epoch + 1}/{tc.phase1_epochs}", progress=runtime.progress) as bar:
        for batch in bar:
            if not distributed.usable(batch):
                continue

            def loss_fn(part):
                with runtime.autocast(device):
                    return phase1_step(forward, model.stage_ratios(), model.grid.tubelet, part,
                                       tc.phase1_reconstruction), None

            opt.zero_grad(set_to_none=True)
            losses, _ = distributed.backward_parts(batch, loss_fn, device, runtime.accumulate)
            distributed.apply_update(opt, [model], losses)
            sched.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v / steps
            bar.set_postfix(ce=f"{losses['ce']:.3f}", spars=f"{losses['spars']:.4f}")
    return sums
