"""Phase 2, adversarial training of the anonymizer ``f`` against auxiliary recognizers A (action) and P (privacy).

Each batch takes two alternating steps, both written out in :func:`train_step`:

1. **anonymizer step**, recognizers frozen (their parameters do not require gradients during it)::

       L_f = L_spars + lambda_A * CE(A(f(x)), y) - lambda_P * BCE(P(f(x)), z)        (the paper, "neg_bce")
       L_f = L_spars + lambda_A * CE(A(f(x)), y) + lambda_P * BCE(P(f(x)), 1/2)      ("confusion")
       L_f += privacy_match * mean_k MMD^2(phi(f(x)) | z_k = 1, phi(f(x)) | z_k = 0)      (option, phi random)
       L_f += privacy_ridge * mean_k margin_k(f(x)) * margin_k(recent)   (option, ridge solved on recent outputs)
       L_f += twin_invariance * mean_kept (f(x) - f(twin(x)))^2        (laboratory oracle: attributes flipped)
       L_f += colour_invariance * mean_kept |f(x) - f(recolour(x))|     (option, the same keep decisions)
       L_f += shape_invariance * mean_kept |f(x) - f(dilate or erode(x))|   (option, the same keep decisions)
       L_f += dropped_invariance * mean_kept |f(x) - f(x with its dropped tubelets from another clip)|  (option)
       L_f += output_energy * mean_kept (f(x) - 1/2)^2 + output_tv * TV_kept(f(x))           (options: the rate)

   and, with ``phase2_output_rank = r`` (synth-quick: 2), the pixel decoder's weight projected back to
   rank r after the update (truncated SVD): each kept tubelet publishes r numbers, no pixel-level code.

   ``f(x)`` is the training-mode output and its keep mask travels with it into A and P (masked attention,
   masked mean pooling), so gradients reach the token scorers through both. With ``bounded_output`` and
   ``bounded_mask`` (the synthetic presets) A and P see ``f(x)`` as it is published: clamped, rounded to uint8,
   a kept tubelet painted black dropped (:func:`recognizer_view`). Without them the float output can carry a
   code outside [0, 1] that no published video holds (measured: ``evaluation.instruments.publication_gap``).
2. **recognizer step(s)**, on ``f(x).detach()``: A minimises its CE, every member of the privacy ensemble its
   BCE; ``adversary_steps`` times per anonymizer step.

The paper's negative BCE is maximised by making P *confidently wrong*, which a fresh attacker simply reads back
(it learns the flipped labels). The confusion target asks for P's predictions to carry no information (p = 1/2).
Every other option here is off in the paper's presets; the synthetic presets use what the study in
``docs/results/recipe_study.md`` kept. Options: the privacy objective, adversary steps and warm-up on the phase-1
output, privacy ensembles and restarts, phase 1's head CE kept, an anonymizer learning-rate scale, the published
output's clamp-and-quantise in training, an identity anchor, a range of keep ratios, and privacy refreshes (every
``privacy_refresh_every`` batches the privacy recognizers restart and train alone for ``privacy_refresh_steps``
batches on the current output, so that the anonymizer next fights an attacker fresh to it, as in phase 3).
``anonymizer_ema`` deploys the moving average of the anonymizer's weights instead of its last iterate.
With ``anonymizer_every = n`` the anonymizer steps on every n-th batch only and the recognizers train alone on
the others (WGAN's n_critic). A low-pass view (``adversary_lowpass``) makes the privacy recognizers read block
means, and instance noise (``adversary_noise``) a noisy copy, so that fine patterns cannot fool them.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from stprivacy.config import ExperimentConfig, TrainConfig, peak_lr
from stprivacy.data.clips import ClipSet
from stprivacy.evaluation.instruments import probe_adversaries, publication_gap, ridge_leak
from stprivacy.evaluation.ridge import clip_statistics
from stprivacy.layers.tubelets import kept_pixels, shown_tubelets
from stprivacy.losses import (
    action_loss,
    confusion_loss,
    keep_ratio_loss,
    masked_reconstruction_loss,
    motion_anchor_loss,
    output_energy,
    privacy_loss,
    publish,
    spatial_variation,
)
from stprivacy.models import STPrivacy, VideoRecognizer
from stprivacy.models.baselines.fixed import pixelate
from stprivacy.models.pretrained import with_pretrained
from stprivacy.models.recognizers import AttackerEnsemble
from stprivacy.training import distributed
from stprivacy.training.appearance import AppearanceMatch
from stprivacy.training.batches import epoch_batches
from stprivacy.training.epochs import run_epochs
from stprivacy.training.erasure import erasure_ratios, refit_in_loop
from stprivacy.training.invariance import colour_invariance_loss, dropped_invariance_loss, shape_invariance_loss
from stprivacy.training.linear_attacker import RidgeAttacker
from stprivacy.training.optim import make_optimizer, warmup_cosine
from stprivacy.training.phase1 import coverage_readings, report_readings, sample_keep_ratio
from stprivacy.training.run_dir import RunDir


class PrivacyView(nn.Module):
    """What a privacy recognizer reads in phase 2: the output pixelated by ``lowpass`` (block means; option
    ``train.adversary_lowpass``) and, in training mode, with Gaussian instance noise of std ``noise`` added (option
    ``train.adversary_noise``; GANs' instance noise). Both take from the anonymizer the low-amplitude, fine
    patterns that fool one recognizer and that a fresh one reads back: to fool a recognizer that only sees block
    means through noise, the output has to change what it shows. Holds no parameters of its own."""

    def __init__(self, member: nn.Module, lowpass: int = 1, noise: float = 0.0):
        super().__init__()
        self.member, self.lowpass, self.noise = member, lowpass, noise
        self.train(member.training)  # a view made mid-training must not flip its member's mode

    def forward(self, video: torch.Tensor, keep_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.lowpass > 1:
            b, c, t, h, w = video.shape
            frames = pixelate(video.transpose(1, 2).reshape(b * t, c, h, w), self.lowpass)
            video = frames.reshape(b, t, c, h, w).transpose(1, 2)
        if self.noise and self.training:
            video = video + self.noise * torch.randn_like(video)
        return self.member(video, keep_mask)


class Adversaries(nn.Module):
    """The auxiliary action recognizer A and the privacy recognizer(s) P of phase 2."""

    def __init__(self, cfg: ExperimentConfig, num_actions: int, num_attributes: int):
        super().__init__()
        self.action = with_pretrained(VideoRecognizer(cfg.recognizer, num_actions))
        self.privacy = AttackerEnsemble(cfg.train.privacy_adversaries, cfg.train.privacy_ensemble, cfg.recognizer,
                                        cfg.frame_attacker, num_attributes)
        self.lowpass, self.noise = cfg.train.adversary_lowpass, cfg.train.adversary_noise

    def privacy_views(self) -> list[nn.Module]:
        """The privacy members as the min-max uses them: each behind its view when a low-pass or noise is set."""
        if self.lowpass == 1 and not self.noise:
            return list(self.privacy)
        return [PrivacyView(p, self.lowpass, self.noise) for p in self.privacy]


@contextlib.contextmanager
def frozen(module: nn.Module):
    """No parameter of ``module`` collects a gradient inside the block; gradients still flow *through* it."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def recognizer_view(out, tc: TrainConfig, tubelet: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The output and keep mask phase 2's recognizers get: the float output and the anonymizer's decision (the
    paper); with ``bounded_output`` the output clamped and quantised as it is published; with ``bounded_mask``
    also the mask that the published video shows (a kept tubelet painted black is dropped; the decision's
    straight-through gradient stays on the tubelets that remain)."""
    if not tc.bounded_output:
        return out.video, out.keep_mask
    video = publish(out.video, straight_through_clamp=tc.bounded_gradient == "straight-through")
    if not tc.bounded_mask:
        return video, out.keep_mask
    shown = shown_tubelets(video.detach(), tubelet).reshape_as(out.keep_mask)
    return video, out.keep_mask * shown.to(out.keep_mask.dtype)


def anonymizer_losses(f, adv: Adversaries, batch: dict, cfg: ExperimentConfig, keep_ratio: float, stage_ratios,
                      tubelet: tuple[int, int, int], match: AppearanceMatch | None = None,
                      ridge: RidgeAttacker | None = None):
    """Step 1's losses on one batch (call inside :func:`frozen`), and the detached output for step 2.
    ``f`` is the anonymizer or its compiled forward; ``tubelet`` its tubelet size (for the identity anchor);
    ``match`` the ``privacy_match`` term and ``ridge`` the ``privacy_ridge`` attacker (None when off)."""
    tc = cfg.train
    out = f(batch["video"], keep_ratio=keep_ratio)
    video, keep = recognizer_view(out, tc, tubelet)
    losses = {"spars": keep_ratio_loss(out.decisions, stage_ratios),
              "ce_A": action_loss(adv.action(video, keep).float(), batch["action"])}
    logits = [p(video, keep).float() for p in adv.privacy_views()]
    bces = torch.stack([privacy_loss(z, batch["attributes"]) for z in logits])
    losses["bce_P"] = bces.min()  # the strongest privacy recognizer's BCE, for the log and the guard
    if tc.privacy_objective == "confusion":
        # the member whose predictions still carry the most information (the largest confusion loss)
        privacy_term = torch.stack([confusion_loss(z) for z in logits]).max()
    else:
        privacy_term = -losses["bce_P"]
    losses["privacy"] = privacy_term
    total = losses["spars"] + tc.lambda_a * losses["ce_A"] + tc.lambda_p * privacy_term
    if tc.phase2_head_ce:
        losses["ce_head"] = action_loss(out.action_logits.float(), batch["action"])
        total = total + tc.phase2_head_ce * losses["ce_head"]
    if match is not None:
        # attacker-free: the output's random-CNN features may not depend on any attribute (appearance.py)
        losses["match"] = match(video, batch["attributes"])
        total = total + tc.privacy_match * losses["match"]
    if tc.twin_invariance:
        # the oracle: the clip and its attribute-flipped twin should publish the same pixels (config.py)
        decisions = [d.detach() for d in out.decisions]  # the selection is not what the oracle teaches
        twin, _ = recognizer_view(f(batch["twin"], stage_masks=decisions, keep_ratio=keep_ratio), tc, tubelet)
        losses["twin"] = twin_difference(video, twin, out.keep_mask, tubelet)
        total = total + tc.twin_invariance * losses["twin"]
    if ridge is not None:
        # the best linear reader of the last batches' published view, solved exactly (linear_attacker.py)
        losses["ridge"] = ridge(video, batch["attributes"])
        total = total + tc.privacy_ridge * losses["ridge"]
    if tc.colour_invariance:
        losses["invariance"] = colour_invariance_loss(f, batch["video"], out, keep_ratio, tubelet,
                                                      tc.colour_invariance_gamma)
        total = total + tc.colour_invariance * losses["invariance"]
    if tc.shape_invariance:
        losses["shape"] = shape_invariance_loss(f, batch["video"], out, keep_ratio, tubelet,
                                                tc.shape_invariance_size)
        total = total + tc.shape_invariance * losses["shape"]
    if tc.dropped_invariance:
        losses["dropped"] = dropped_invariance_loss(f, batch["video"], out, keep_ratio, tubelet)
        total = total + tc.dropped_invariance * losses["dropped"]
    if tc.output_energy:
        losses["energy"] = output_energy(out.video, out.keep_mask, tubelet)
        total = total + tc.output_energy * losses["energy"]
    if tc.output_tv:
        losses["tv"] = spatial_variation(out.video, out.keep_mask, tubelet)
        total = total + tc.output_tv * losses["tv"]
    if tc.motion_anchor:
        # the published view may flicker only as the input does (losses.motion_anchor_loss)
        losses["motion"] = motion_anchor_loss(video, batch["video"], out.keep_mask, tubelet)
        total = total + tc.motion_anchor * losses["motion"]
    if tc.phase2_reconstruction:
        losses["recon"] = masked_reconstruction_loss(out.video, batch["video"], out.keep_mask, tubelet,
                                                     cfg.model.temporal_residual)
        total = total + tc.phase2_reconstruction * losses["recon"]
    losses["total"] = total
    return losses, (video.detach(), keep.detach())


def twin_difference(video: torch.Tensor, twin: torch.Tensor, keep: torch.Tensor, tubelet: tuple[int, int, int]
                    ) -> torch.Tensor:
    """Mean squared difference between two outputs (``B x 3 x T x H x W``) over the pixels of the kept tubelets
    (``keep``: ``B x L x N``)."""
    keep = keep.detach()
    kept = keep.sum() * math.prod(tubelet) * video.shape[1]
    return kept_pixels(video - twin, keep, tubelet).pow(2).sum() / kept.clamp(min=1)


def recognizer_losses(adv: Adversaries, batch: dict, published: tuple[torch.Tensor, torch.Tensor]):
    """Step 2's losses on the detached output: A's CE, the sum of every privacy member's BCE."""
    video, keep = published
    ce = action_loss(adv.action(video, keep).float(), batch["action"])
    bces = torch.stack([privacy_loss(p(video, keep).float(), batch["attributes"]) for p in adv.privacy_views()])
    return {"rec_ce_A": ce, "rec_bce_P": bces.mean(), "total": ce + bces.sum()}


def train_step(f: STPrivacy, forward, adv: Adversaries, batch: dict, cfg: ExperimentConfig, opts: dict,
               keep_ratio: float, match: AppearanceMatch | None = None, ridge: RidgeAttacker | None = None
               ) -> dict[str, float]:
    """One phase-2 update: the anonymizer step, then ``adversary_steps`` recognizer steps on its detached output."""
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    stage_ratios = f.stage_ratios(keep_ratio)

    def step1(part):
        with runtime.autocast(device), frozen(adv):
            return anonymizer_losses(forward, adv, part, cfg, keep_ratio, stage_ratios, f.grid.tubelet, match, ridge)

    for opt in opts.values():
        opt.zero_grad(set_to_none=True)
    f_losses, parts = distributed.backward_parts(batch, step1, device, runtime.accumulate)
    distributed.apply_update(opts["anonymizer"], [f], f_losses, {"bce_P": tc.max_privacy_bce})
    if tc.phase2_output_rank:
        limit_decoder_rank(f, tc.phase2_output_rank)  # projected gradient descent onto rank-r decoders

    def step2(part, published):
        with runtime.autocast(device):
            return recognizer_losses(adv, part, published)

    for _ in range(tc.adversary_steps):
        opts["adversaries"].zero_grad(set_to_none=True)
        rec_losses = distributed.backward_again(parts, step2)
        distributed.apply_update(opts["adversaries"], [adv], rec_losses)
    return {**f_losses, **{k: v for k, v in rec_losses.items() if k != "total"}}  # "total" is the anonymizer's


def adversary_step(f: STPrivacy, adv: Adversaries, batch: dict, cfg: ExperimentConfig, opt,
                   keep_ratio: float | None = None) -> dict[str, float]:
    """One recognizer update on the output of a fixed anonymizer (no gradient reaches ``f``): the warm-up's and
    the refresh's step."""
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()

    def loss_fn(part):
        with runtime.autocast(device), torch.no_grad():
            out = f(part["video"], keep_ratio=keep_ratio)
        with runtime.autocast(device):
            return recognizer_losses(adv, part, recognizer_view(out, tc, f.grid.tubelet)), None

    opt.zero_grad(set_to_none=True)
    losses, _ = distributed.backward_parts(batch, loss_fn, device, runtime.accumulate)
    distributed.apply_update(opt, [adv], losses)
    return {k: v for k, v in losses.items() if k != "total"}


def warm_up_adversaries(f: STPrivacy, adv: Adversaries, train: ClipSet, cfg: ExperimentConfig, opt, gen) -> None:
    """``adversary_warmup_epochs`` of recognizer steps on the frozen phase-1 anonymizer's output, so that the
    min-max starts against adversaries that already read what the output leaks."""
    tc, runtime = cfg.train, cfg.runtime
    epochs = tc.adversary_warmup_epochs
    if epochs <= 0:
        return
    steps = max(1, math.ceil(epochs * len(train) / tc.batch_size))
    done = passes = 0
    while done < steps:
        with epoch_batches(train, tc.batch_size, generator=gen, hflip=cfg.data.hflip, device=runtime.torch_device(),
                           desc="phase 2 adversary warm-up", progress=runtime.progress, draw=(20, passes)) as bar:
            passes += 1
            for batch in bar:
                if done >= steps:
                    break
                losses = adversary_step(f, adv, batch, cfg, opt)
                bar.set_postfix(ce_A=f"{losses['rec_ce_A']:.3f}", bce_P=f"{losses['rec_bce_P']:.3f}")
                done += 1


def refresh_privacy(adv: Adversaries, opt) -> None:
    """``privacy_refresh_every``: the privacy recognizers start again from a fresh initialisation, with no Adam
    moments left from the models they replace, so that the next ``privacy_refresh_steps`` batches train a fresh
    attacker on the current output, as phase 3 will."""
    adv.privacy.restart()
    for p in adv.privacy.parameters():
        opt.state.pop(p, None)
    distributed.broadcast_module(adv.privacy)


def is_refresh_batch(tc, index: int) -> bool:
    """Whether batch ``index`` of phase 2 (counted over all epochs) is one of a refresh's adversary-only batches:
    the ``privacy_refresh_steps`` batches that start at every multiple of ``privacy_refresh_every`` but the first."""
    every = tc.privacy_refresh_every
    return bool(every) and index >= every and index % every < tc.privacy_refresh_steps


def refit_ridge(ridge: RidgeAttacker, f: STPrivacy, train: ClipSet, cfg: ExperimentConfig, draw: int
                ) -> dict[str, float]:
    """``privacy_ridge_refit_every``: refit the in-loop ridge on the published output of a random sample of
    training clips (phase 3's attacker at the anonymizer's current state); returns its held-out margin, the
    largest over the attributes, for the log."""
    from stprivacy.evaluation.phase3 import anonymize_clips

    tc, runtime = cfg.train, cfg.runtime
    n = min(tc.privacy_ridge_refit_clips, len(train))
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 7919 + draw))[:n]
    was_training = f.training
    published = anonymize_clips(f, train.subset(picked), cfg.model.keep_ratio, runtime)
    f.train(was_training)
    fit = n - n // 4
    device = runtime.torch_device()
    held_out = ridge.refit(clip_statistics(published.subset(torch.arange(fit)), ridge.cells, device=device),
                           clip_statistics(published.subset(torch.arange(fit, n)), ridge.cells, device=device))
    return {"ridge_refit_margin": float(held_out.abs().max())}


def validation_readings(f: STPrivacy, adv: Adversaries, val: ClipSet | None, cfg: ExperimentConfig
                        ) -> dict[str, float]:
    """The phase-2 instruments on validation: A's top-1 and the worst privacy member's cMAP on the published
    output (inference mode, uint8, masks from the video), A's top-1 on the float output beside it with the share
    of kept pixels clamped away and of kept tubelets painted black (a float top-1 far above the published one
    means the min-max trains on a code no published video holds), a fresh linear attacker's cMAP on the published
    output (``val_ridge_cmap``: it needs no training horizon, so it reads what the co-trained recognizers may
    have stopped seeing), and the actor coverage."""
    if val is None:
        return {}
    was_training = f.training
    gap = publication_gap(f, adv.action, val, cfg.model.keep_ratio, cfg.runtime)  # also publishes the clips
    published = gap.published
    top1, worst = probe_adversaries(adv.action, adv.privacy_views(), published, cfg.runtime)
    out = {"val_A_top1": top1, "val_A_float_top1": gap.float_top1, "val_clamped": gap.clamped,
           "val_painted_black": gap.painted_black, "val_P_cmap": worst, "val_ridge_cmap": ridge_leak(published),
           **coverage_readings(f, val, cfg)}
    f.train(was_training)
    return out


@torch.no_grad()
def limit_decoder_rank(f: STPrivacy, rank: int) -> None:
    """Replace the pixel decoder's weight by its best rank-``rank`` approximation (truncated SVD; the bias, one
    constant pattern, stays free): ``train.phase2_output_rank``. Deterministic, so every rank of a distributed
    run projects its identical weights alike."""
    if not isinstance(f.to_pixels, nn.Linear):
        raise ValueError("train.phase2_output_rank needs the full linear decoder (model.output_rank = 0)")
    weight = f.to_pixels.weight
    if rank >= min(weight.shape):
        return
    u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
    weight.copy_(((u[:, :rank] * s[:rank]) @ vh[:rank]).to(weight.dtype))


def weight_average(f: STPrivacy, decay: float) -> AveragedModel | None:
    """The moving average of the anonymizer's weights that ``train.anonymizer_ema`` deploys (None when off)."""
    if not decay:
        return None
    return AveragedModel(f, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def train_phase2(f: STPrivacy, train: ClipSet, cfg: ExperimentConfig, run: RunDir, val: ClipSet | None = None
                 ) -> tuple[STPrivacy, Adversaries]:
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    if tc.phase2_freeze_selection:
        f.set_selection_trainable(False)
    if tc.phase2_output_rank:
        limit_decoder_rank(f, tc.phase2_output_rank)  # a resumed phase 2 then loads its own (rank-r) weights
    adv = Adversaries(cfg, len(train.action_names), len(train.attribute_names)).to(device)
    f.to(device).train()
    adv.train()
    distributed.broadcast_module(f)
    distributed.broadcast_module(adv)
    steps = max(1, -(-len(train) // tc.batch_size))
    lr = peak_lr(tc)
    opts = {"anonymizer": make_optimizer(f, lr * tc.anonymizer_lr_scale, tc.weight_decay, tc.backbone_lr_scale,
                                         tc.layer_decay),
            "adversaries": make_optimizer(adv, lr, tc.weight_decay, tc.backbone_lr_scale, tc.layer_decay)}
    scheds = {k: warmup_cosine(o, tc.phase2_epochs * steps, int(tc.warmup_epochs * steps)) for k, o in opts.items()}
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    forward = runtime.compiled(f)  # once per phase: compiling is slow
    match = AppearanceMatch(tc.privacy_match_widths) if tc.privacy_match else None
    ridge = (RidgeAttacker(tc.privacy_ridge_cells, tc.privacy_ridge_buffer, tc.privacy_ridge_alpha)
             if tc.privacy_ridge else None)
    stem = run.checkpoint("phase2")
    average = weight_average(f, tc.anonymizer_ema)
    deployed = f if average is None else average.module  # what the instruments read and phase 2 returns

    def before_epoch(epoch: int) -> None:
        if epoch == 0:  # a fresh phase 2 (a resumed one has its warmed-up adversaries in the checkpoint)
            warm_up_adversaries(f, adv, train, cfg, opts["adversaries"], gen)
        if tc.privacy_restart_every and epoch and epoch % tc.privacy_restart_every == 0:
            refresh_privacy(adv, opts["adversaries"])  # the same restart as a refresh's: moments cleared, broadcast
            run.log("privacy_restart", phase=2, epoch=epoch + 1)

    def epoch_fn(epoch: int) -> dict[str, float]:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}  # refresh batches log only the recognizers' losses
        if match is not None:
            match.reset(cfg.seed * 1000 + epoch)
        with epoch_batches(train, tc.batch_size, generator=gen, hflip=cfg.data.hflip, device=device,
                           desc=f"phase 2 epoch {epoch + 1}/{tc.phase2_epochs}", progress=runtime.progress,
                           draw=(2, epoch)) as bar:
            for i, batch in enumerate(bar):
                ratio = sample_keep_ratio(tc, cfg.model.keep_ratio, gen)
                index = epoch * steps + i
                refreshing = is_refresh_batch(tc, index)
                if refreshing and index % tc.privacy_refresh_every == 0:
                    refresh_privacy(adv, opts["adversaries"])
                    run.log("privacy_refresh", phase=2, epoch=epoch + 1, batch=index)
                if tc.erasure_refit_every and index % tc.erasure_refit_every == 0:
                    run.log("erasure_refit", phase=2, epoch=epoch + 1, batch=index,
                            **refit_in_loop(f, train, cfg, index))
                if tc.erasure_refit_every:  # the ratios the erasers serve, so that each batch trains through one
                    ratios = erasure_ratios(cfg)
                    ratio = ratios[int(torch.randint(len(ratios), (), generator=gen))]
                if ridge is not None and tc.privacy_ridge_refit_every and index % tc.privacy_ridge_refit_every == 0:
                    run.log("ridge_refit", phase=2, epoch=epoch + 1, batch=index,
                            **refit_ridge(ridge, f, train, cfg, index))
                if refreshing or index % tc.anonymizer_every:
                    # the recognizers alone on the current output: a fresh attacker learning it (refresh), or the
                    # batches between two anonymizer steps (anonymizer_every)
                    losses = adversary_step(f, adv, batch, cfg, opts["adversaries"], ratio)
                else:
                    losses = train_step(f, forward, adv, batch, cfg, opts, ratio, match, ridge)
                    if average is not None:
                        average.update_parameters(f)
                for s in scheds.values():
                    s.step()
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                    counts[k] = counts.get(k, 0) + 1
                bar.set_postfix(ce_A=f"{losses.get('ce_A', losses.get('rec_ce_A')):.3f}",
                                bce_P=f"{losses.get('bce_P', losses.get('rec_bce_P')):.3f}")
        distributed.broadcast_module(adv)  # BatchNorm statistics of the frame CNNs: rank 0's
        means = {k: v / counts[k] for k, v in sums.items()}
        return {**means, **report_readings(validation_readings(deployed, adv, val, cfg),
                                           f"phase 2 epoch {epoch + 1}")}

    modules = {"anonymizer": f, "adversaries": adv}
    if average is not None:
        modules["anonymizer_average"] = average  # resumes with the average, not only the last iterate
    run_epochs(phase=2, epochs=tc.phase2_epochs, run=run, stem=stem, modules=modules, optimizers=opts,
               schedulers=scheds, generator=gen, tc=tc, epoch_fn=epoch_fn, before_epoch=before_epoch)
    if average is not None:
        f.load_state_dict(average.module.state_dict())
        if tc.phase2_output_rank:  # an average of rank-r weights is not rank r
            limit_decoder_rank(f, tc.phase2_output_rank)
    return f, adv
