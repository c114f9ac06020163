"""Phase 2, adversarial training of the anonymizer against auxiliary recognizers.

Each batch alternates two steps (written out once, here):

1. anonymizer step, recognizers frozen::

       L_f = L_spars + lambda_A * CE(A(f(x)), y) - lambda_P * BCE(P(f(x)), z)

   ``f(x)`` is the training-mode output (Gumbel masks) and its keep mask travels with it into A and P (masked
   attention, masked mean pooling), so gradients reach the token scorers through both.
2. recognizer step, anonymizer output detached: A minimises its CE, P (every member of the privacy ensemble)
   its BCE.

Both steps' gradients come from one forward pass (:func:`stprivacy.training.distributed.backward_split`): the
recognizers' weights do not change between the two steps and the second one sees the first one's output, so their
outputs are the same numbers twice; each loss sends its gradient only to its own side. Phase 2 ran 1.4x faster
for it on the demo's CPU; the update is the same (tested).

Options (off by default, as in the paper): an ensemble of privacy recognizers where the anonymizer fights the
strongest one per batch (smallest BCE), and re-initialising the privacy recognizers every few epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from stprivacy.config import ExperimentConfig
from stprivacy.data.clips import ClipSet
from stprivacy.losses import action_loss, anonymizer_objective, keep_ratio_loss, privacy_loss
from stprivacy.models import STPrivacy, VideoRecognizer
from stprivacy.models.pretrained import with_pretrained
from stprivacy.models.recognizers import AttackerEnsemble
from stprivacy.training import distributed
from stprivacy.training.batches import epoch_batches
from stprivacy.training.epochs import run_epochs
from stprivacy.training.optim import make_optimizer, warmup_cosine
from stprivacy.training.run_dir import RunDir


class Adversaries(nn.Module):
    """The auxiliary action recognizer A and the privacy recognizer(s) P of phase 2."""

    def __init__(self, cfg: ExperimentConfig, num_actions: int, num_attributes: int):
        super().__init__()
        self.action = with_pretrained(VideoRecognizer(cfg.recognizer, num_actions))
        self.privacy = AttackerEnsemble(cfg.train.privacy_adversaries, cfg.train.privacy_ensemble, cfg.recognizer,
                                        cfg.frame_attacker, num_attributes)


def anonymizer_step(f, stage_ratios: list[float], adv: Adversaries, batch: dict, lambda_a: float, lambda_p: float):
    """The anonymizer's losses on one batch; ``f`` is the anonymizer (or its compiled forward).
    Returns the anonymized output, the anonymizer's losses and the recognizers' own losses (:func:`recognizer_losses`)
    on that output, all from one forward pass of each recognizer."""
    out = f(batch["video"])
    spars = keep_ratio_loss(out.decisions, stage_ratios)
    ce = action_loss(adv.action(out.video, out.keep_mask).float(), batch["action"])
    bces = torch.stack([privacy_loss(p(out.video, out.keep_mask).float(), batch["attributes"]) for p in adv.privacy])
    bce = bces.min()  # the strongest privacy recognizer
    total = anonymizer_objective(spars, ce, bce, lambda_a, lambda_p)
    return out, {"spars": spars, "ce_A": ce, "bce_P": bce, "total": total}, recognizer_losses(ce, bces)


def recognizer_losses(ce: torch.Tensor, bces: torch.Tensor) -> dict[str, torch.Tensor]:
    """The recognizers' step: A minimises its CE, every member of the privacy ensemble its BCE."""
    return {"rec_ce_A": ce, "rec_bce_P": bces.mean(), "total": ce + bces.sum()}


def train_phase2(f: STPrivacy, train: ClipSet, cfg: ExperimentConfig, run: RunDir) -> tuple[STPrivacy, Adversaries]:
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    adv = Adversaries(cfg, len(train.action_names), len(train.attribute_names)).to(device)
    f.to(device).train()
    adv.train()
    distributed.broadcast_module(f)
    distributed.broadcast_module(adv)
    steps = max(1, -(-len(train) // tc.batch_size))
    opts = {"anonymizer": make_optimizer(f, tc.peak_lr(), tc.weight_decay, tc.backbone_lr_scale, tc.layer_decay),
            "adversaries": make_optimizer(adv, tc.peak_lr(), tc.weight_decay, tc.backbone_lr_scale, tc.layer_decay)}
    scheds = {k: warmup_cosine(o, tc.phase2_epochs * steps, int(tc.warmup_epochs * steps)) for k, o in opts.items()}
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    forward = runtime.compiled(f)  # once per phase: compiling is slow

    def restart_privacy(epoch: int) -> None:
        if tc.privacy_restart_every and epoch and epoch % tc.privacy_restart_every == 0:
            adv.privacy.restart()
            run.log("privacy_restart", phase=2, epoch=epoch + 1)

    run_epochs(phase=2, epochs=tc.phase2_epochs, run=run, stem=run.checkpoint("phase2"),
               modules={"anonymizer": f, "adversaries": adv}, optimizers=opts, schedulers=scheds, generator=gen,
               tc=tc, epoch_fn=lambda epoch: _phase2_epoch(f, forward, adv, train, cfg, opts, scheds, gen, epoch,
                                                               steps),
               before_epoch=restart_privacy)
    return f, adv


def _phase2_epoch(f, forward, adv, train, cfg, opts, scheds, gen, epoch, steps) -> dict[str, float]:
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    limits = {"bce_P": tc.max_privacy_bce}
    sums: dict[str, float] = {}
    with epoch_batches(train, tc.batch_size, generator=gen, hflip=cfg.data.hflip, device=device,
                       desc=f"phase 2 epoch {epoch + 1}/{tc.phase2_epochs}", progress=runtime.progress) as bar:
        for batch in bar:
            if not distributed.usable(batch):
                continue

            def both_losses(part):
                with runtime.autocast(device):
                    _, f_losses, rec_losses = anonymizer_step(forward, f.stage_ratios(), adv, part, tc.lambda_a,
                                                              tc.lambda_p)
                return f_losses, rec_losses

            for opt in opts.values():
                opt.zero_grad(set_to_none=True)
            # The two alternating updates of the paper from one forward pass: the anonymizer's objective reaches
            # the anonymizer's parameters only (the recognizers are fixed for it), the recognizers' own losses reach
            # theirs only (the anonymized video is fixed for them), before either takes its step.
            f_losses, rec_losses = distributed.backward_split(batch, both_losses, [f], [adv], device,
                                                              runtime.accumulate)
            distributed.apply_update(opts["anonymizer"], [f], f_losses, limits)
            distributed.apply_update(opts["adversaries"], [adv], rec_losses)
            for s in scheds.values():
                s.step()
            # The recognizers' own losses equal ce_A and bce_P of the anonymizer step (same weights, same values),
            # so only the anonymizer step is logged.
            for k, v in f_losses.items():
                sums[k] = sums.get(k, 0.0) + v / steps
            bar.set_postfix(ce_A=f"{f_losses['ce_A']:.3f}", bce_P=f"{f_losses['bce_P']:.3f}")
        distributed.broadcast_module(adv)  # BatchNorm statistics of the frame CNNs: rank 0's
    return sums
