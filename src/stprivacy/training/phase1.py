"""Phase 1, initialization: the anonymizer classifies actions itself through its head on the kept tokens.

    L = L_spars + CE_action  (+ phase1_reconstruction * L1(kept tubelets of the output, of the input))

The reconstruction term is this project's option (0 in the paper's presets): the paper trains the pixel head only in
phase 2; starting it near the identity lets short CPU runs reach a useful anonymizer.

``phase1_critic`` (this project's option, 0 in the paper's presets) adds ``w * CE(A(f(x)))``: an action recognizer
A, trained jointly, reads the anonymizer's *output pixels* with the keep mask, as phase 3's recognizers will. The
head alone reads features that the blocks before the first selection have mixed from every tubelet, so it needs
no actor tubelet to be kept; the critic rewards the selection whose kept pixels carry the action.
``phase1_critic_input: input`` shows it the original pixels of the kept tubelets instead, which the decoder cannot
repaint.

``phase1_pattern_adversary`` (this project's option, 0 in the paper's presets) adds ``w * confusion(M(mask))``:
an attacker M that sees only the keep mask learns the private attributes from it (on the detached mask), and the
selector learns, through M's current weights, to leave it at chance. Which tubelets a video shows is published
with it; on the synthetic benchmark that pattern alone told the attributes to a fresh attacker at 62 % cMAP.

``phase1_colour_invariance`` (this project's option, 0 in the paper's presets) adds ``w * L_sel``: the scorers
must rank the tokens of every slice the same way on the clip and on a re-coloured copy of it
(``training/invariance.py``), so that which tubelets are kept says nothing of skin tone or bare limbs.

After every epoch, with a validation split: the head's top-1 under top-k at the training ratio and, on synthetic
data, the actor coverage at every evaluated keep ratio (``evaluation/instruments.py``), logged to ``log.jsonl``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from tqdm.auto import tqdm

from stprivacy.config import ExperimentConfig, TrainConfig, peak_lr
from stprivacy.data.clips import ClipSet
from stprivacy.evaluation.instruments import (
    coverage_of,
    inference_masks,
    keep_pattern_leak,
    probe_head,
    published_masks,
)
from stprivacy.layers.tubelets import kept_pixels
from stprivacy.losses import action_loss, confusion_loss, keep_ratio_loss, masked_reconstruction_loss, privacy_loss
from stprivacy.models import KeepPatternAttacker, STPrivacy, VideoRecognizer
from stprivacy.models.pretrained import with_pretrained
from stprivacy.models.selection import motion_prior
from stprivacy.training import distributed
from stprivacy.training.batches import epoch_batches
from stprivacy.training.epochs import run_epochs
from stprivacy.training.invariance import phase1_selection_invariance
from stprivacy.training.optim import make_optimizer, warmup_cosine
from stprivacy.training.run_dir import RunDir


def phase1_step(model, stage_ratios: list[float], tubelet: tuple[int, int, int], batch: dict,
                recon_weight: float, critic: nn.Module | None = None, critic_weight: float = 0.0,
                keep_ratio: float | None = None, critic_input: str = "output", *,
                pattern: nn.Module | None = None, pattern_weight: float = 0.0,
                published: torch.Tensor | None = None, residual: bool = False,
                colour_weight: float = 0.0, colour_gamma: float = 2.5) -> dict[str, torch.Tensor]:
    """The phase-1 losses of one batch; ``model`` is the anonymizer (or its compiled forward). ``published``:
    the batch's inference keep masks, for the pattern attacker to learn from (else the training masks).
    ``residual``: the model publishes changes only (``model.temporal_residual``), and is asked to reconstruct
    the input's. ``colour_weight``: ``phase1_colour_invariance``, the selection's ranking on a re-coloured copy."""
    out = model(batch["video"], keep_ratio=keep_ratio)
    losses = {
        "spars": keep_ratio_loss(out.decisions, stage_ratios),
        "ce": action_loss(out.action_logits.float(), batch["action"]),
    }
    if recon_weight:
        losses["recon"] = recon_weight * masked_reconstruction_loss(out.video, batch["video"], out.keep_mask, tubelet,
                                                                    residual)
    if critic is not None and critic_weight:
        losses["critic"] = critic_weight * critic_loss(critic, critic_input, out, batch, tubelet)
    if pattern is not None and pattern_weight:
        hide, read = pattern_losses(pattern, out.keep_mask, batch["attributes"], published)
        losses["pattern"], losses["pattern_bce"] = pattern_weight * hide, read
    if colour_weight:
        losses["selection_invariance"] = colour_weight * phase1_selection_invariance(
            model, batch["video"], out, keep_ratio, colour_gamma)
    losses["total"] = sum(losses.values())
    return losses


def critic_loss(critic: nn.Module, critic_input: str, out, batch: dict, tubelet: tuple[int, int, int]
                ) -> torch.Tensor:
    """The phase-1 critic's action CE. "output" / "input": the critic and the anonymizer minimise the same CE on
    the selector's view, one backward trains both. "input-random": the selector learns through the critic's
    current weights (held fixed in this term), while the critic itself learns only from random masks of the same
    counts; since the keep pattern it trains on says nothing about the class, the selector cannot use *which*
    tubelets it keeps as a message and must keep the tubelets whose pixels show the action."""
    video, action = batch["video"], batch["action"]
    if critic_input == "output":
        return action_loss(critic(out.video, out.keep_mask).float(), action)
    seen = kept_pixels(video, out.keep_mask, tubelet)
    if critic_input == "input":
        return action_loss(critic(seen, out.keep_mask).float(), action)
    fixed = {k: v.detach() for k, v in critic.named_parameters()}
    through = action_loss(functional_call(critic, fixed, (seen, out.keep_mask)).float(), action)
    chance = random_keep_mask(out.keep_mask.detach())
    own = action_loss(critic(kept_pixels(video, chance, tubelet), chance).float(), action)
    return through + own


def pattern_losses(attacker: nn.Module, keep_mask: torch.Tensor, attributes: torch.Tensor,
                   published: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The keep-pattern min-max of one batch, written so that one backward serves both sides: the selector's
    term (the attacker's confusion on the training mask, its weights held fixed so this term does not train it)
    and the attacker's term (its BCE on ``published`` masks when given, else on the detached training mask; it
    does not train the selector).

    The training mask is a Gumbel-perturbed top-k; the published one is not. An attacker that learns only from
    the noisy masks can sit at chance while a fresh one reads the clean pattern (measured: co-trained BCE 0.69
    from the first epoch, fresh linear probe 55-64 % cMAP on the same seed)."""
    fixed = {k: v.detach() for k, v in attacker.named_parameters()}
    hide = confusion_loss(functional_call(attacker, fixed, (keep_mask,)).float())
    seen = keep_mask.detach() if published is None else published.to(keep_mask.dtype)
    read = privacy_loss(attacker(seen).float(), attributes)
    return hide, read


def random_keep_mask(keep_mask: torch.Tensor) -> torch.Tensor:
    """A B x L x N mask keeping, in each slice, as many tubelets as ``keep_mask`` does, chosen uniformly."""
    counts = keep_mask.round().sum(-1, keepdim=True)
    rank = torch.rand_like(keep_mask).argsort(-1).argsort(-1)
    return (rank < counts).to(keep_mask.dtype)


def sample_keep_ratio(tc, default: float, gen: torch.Generator) -> float:
    """The keep ratio of one training batch: ``train.keep_ratio_range`` sampled uniformly, else the model's."""
    if not tc.keep_ratio_range:
        return default
    lo, hi = tc.keep_ratio_range
    return float(lo + (hi - lo) * torch.rand((), generator=gen))


def validation_readings(model: STPrivacy, val: ClipSet | None, cfg: ExperimentConfig) -> dict[str, float]:
    """The phase-1 instruments on validation: head top-1 under top-k at the training ratio, actor coverage."""
    if val is None:
        return {}
    runtime = cfg.runtime
    out = {"val_head_top1": probe_head(model, val, cfg.model.keep_ratio, runtime)}
    out.update(coverage_readings(model, val, cfg))
    return out


def coverage_readings(model: STPrivacy, val: ClipSet, cfg: ExperimentConfig) -> dict[str, float]:
    """At every evaluated keep ratio below 1: ``val_pattern_cmap_a<ratio>`` (a fresh linear attacker on the keep
    masks alone) and, on synthetic data (it needs actor masks), ``val_coverage_a<ratio>``."""
    out = {}
    stages = len(model.scorers)
    for a in sorted({cfg.model.keep_ratio, *cfg.evaluate.keep_ratios}, reverse=True):
        if a < 1.0:
            keep = inference_masks(model, val, a, cfg.runtime)
            if val.actor_masks is not None:
                out[f"val_coverage_a{a:g}"] = coverage_of(keep, val, model.grid, a, stages).coverage
            out[f"val_pattern_cmap_a{a:g}"] = keep_pattern_leak(keep, val.attributes)
    return out


def train_phase1(model: STPrivacy, train: ClipSet, cfg: ExperimentConfig, run: RunDir,
                 val: ClipSet | None = None) -> STPrivacy:
    """Train (or resume) phase 1; returns the model, its checkpoint saved as ``checkpoints/phase1``."""
    tc, runtime = cfg.train, cfg.runtime
    device = runtime.torch_device()
    if cfg.model.selection == "prior":  # where the training clips change, the same for every clip (no label)
        model.set_keep_prior(motion_prior(train.videos[:, 0], model.grid.tubelet))
    model.to(device).train()
    modules: dict[str, nn.Module] = {"anonymizer": model}
    if tc.phase1_critic:
        modules["critic"] = with_pretrained(VideoRecognizer(cfg.recognizer, len(train.action_names))).to(device)
    if tc.phase1_pattern_adversary:
        grid = model.grid
        modules["pattern"] = KeepPatternAttacker(grid.slices, grid.tokens_per_slice,
                                                 len(train.attribute_names)).to(device)
    for m in modules.values():
        m.train()
        distributed.broadcast_module(m)
    steps = max(1, -(-len(train) // tc.batch_size))
    opts = {name: make_optimizer(m, peak_lr(tc), tc.weight_decay, tc.backbone_lr_scale, tc.layer_decay)
            for name, m in modules.items()}
    scheds = {k: warmup_cosine(o, tc.phase1_epochs * steps, int(tc.warmup_epochs * steps)) for k, o in opts.items()}
    gen = torch.Generator().manual_seed(cfg.seed)
    forward = runtime.compiled(model)  # once per phase: compiling is slow

    def epoch_fn(epoch: int) -> dict[str, float]:
        sums = _phase1_epoch(model, forward, modules, train, cfg, opts, scheds, gen, epoch, steps)
        return {**sums, **report_readings(validation_readings(model, val, cfg), f"phase 1 epoch {epoch + 1}")}

    run_epochs(phase=1, epochs=tc.phase1_epochs, run=run, stem=run.checkpoint("phase1"),
               modules=modules, optimizers=opts, schedulers=scheds, generator=gen, tc=tc, epoch_fn=epoch_fn,
               before_epoch=lambda epoch: set_trainable(model, epoch, tc))
    freeze_backbone(model, False)
    model.set_selection_trainable(True)
    return model


def set_trainable(model: STPrivacy, epoch: int, tc: TrainConfig) -> None:
    """Before phase-1 epoch ``epoch``: the trunk frozen during ``freeze_backbone_epochs``, the selection from
    ``phase1_selection_epochs`` on (on resume too, since it depends on the epoch alone)."""
    freeze_backbone(model, epoch < tc.freeze_backbone_epochs)
    if tc.phase1_selection_epochs and epoch >= tc.phase1_selection_epochs:
        model.set_selection_trainable(False)


def report_readings(readings: dict[str, float], where: str) -> dict[str, float]:
    """Print the validation instruments under the progress bars (rank 0) and return them for the log."""
    if readings and distributed.current().is_main:
        tqdm.write(f"{where} validation: " + ", ".join(f"{k[4:]} {v:.3g}" for k, v in readings.items()))
    return readings


def freeze_backbone(model: STPrivacy, frozen: bool) -> None:
    """Stop (or resume) training the ViT trunk; the token scorers and heads keep learning."""
    model.vit.requires_grad_(not frozen)


def _phase1_epoch(model, forward, modules, train, cfg, opts, scheds, gen, epoch, steps) -> dict[str, float]:
    tc, runtime = cfg.train, cfg.runtime
    critic, pattern = modules.get("critic"), modules.get("pattern")
    clean_masks = pattern is not None and tc.phase1_pattern_masks == "published"
    device = runtime.torch_device()
    sums: dict[str, float] = {}
    with epoch_batches(train, tc.batch_size, generator=gen, hflip=cfg.data.hflip, device=device,
                       desc=f"phase 1 epoch {epoch + 1}/{tc.phase1_epochs}", progress=runtime.progress,
                       draw=(1, epoch)) as bar:
        for batch in bar:

            a = sample_keep_ratio(tc, cfg.model.keep_ratio, gen)

            def loss_fn(part, a=a):
                published = published_masks(model, part["video"], a) if clean_masks else None
                with runtime.autocast(device):
                    return phase1_step(forward, model.stage_ratios(a), model.grid.tubelet, part,
                                       tc.phase1_reconstruction, critic, tc.phase1_critic, a,
                                       tc.phase1_critic_input, pattern=pattern,
                                       pattern_weight=tc.phase1_pattern_adversary, published=published,
                                       residual=cfg.model.temporal_residual,
                                       colour_weight=tc.phase1_colour_invariance,
                                       colour_gamma=tc.colour_invariance_gamma), None

            for opt in opts.values():
                opt.zero_grad(set_to_none=True)
            losses, _ = distributed.backward_parts(batch, loss_fn, device, runtime.accumulate)
            distributed.apply_update(opts["anonymizer"], [model], losses)
            for name in ("critic", "pattern"):
                if name in modules:
                    distributed.apply_update(opts[name], [modules[name]], {})
            for sched in scheds.values():
                sched.step()
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v / steps
            bar.set_postfix(ce=f"{losses['ce']:.3f}", spars=f"{losses['spars']:.4f}")
    return sums
