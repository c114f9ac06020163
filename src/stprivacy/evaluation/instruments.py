"""Instruments that show the two mechanisms at work, not only the end number.

* **Actor coverage** (synthetic data, whose renderer knows where the actor is): the actor's share of the kept
  tubelets divided by its share of all tubelets. 1.0 is what a random choice of tubelets gets; below 1 the
  selector prefers background; :func:`oracle_coverage` is the best any selector can reach at that keep ratio.
* **Keep-pattern leak**: a fresh linear attacker of the private attributes on the keep masks alone,
  :func:`keep_pattern_leak`.
* **Published-video masks**: the keep mask an attacker can know is the one the video shows (its all-zero
  tubelets), see :func:`keep_mask_from_video`.
* **Validation probes**: the phase-1 head's top-1 under top-k, and phase 2's auxiliary recognizers on validation
  outputs produced exactly as phase 3 sees them (inference mode, uint8), in :func:`probe_head` and
  :func:`probe_adversaries`.
* **Publication gap**: what a recognizer reads in the float output and what survives clamping, rounding and the
  mask a video shows, :func:`publication_gap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stprivacy.data.clips import ClipSet, to_float, to_uint8
from stprivacy.evaluation.metrics import cmap, top1_accuracy
from stprivacy.layers.tubelets import TubeletGrid, keep_mask_pixels, shown_tubelets
from stprivacy.models.selection import tokens_to_keep
from stprivacy.runtime import RuntimeConfig


def keep_mask_from_video(video: torch.Tensor, grid: TubeletGrid) -> torch.Tensor:
    """B x 3 x T x H x W (uint8 or float) -> B x L x N uint8 mask: 1 where the tubelet has a non-zero pixel.

    This is all a deployed video tells an attacker: a kept tubelet that the anonymizer paints black is, to it,
    a dropped one."""
    shown = shown_tubelets(video, grid.tubelet).to(torch.uint8)
    return shown.reshape(len(video), grid.slices, grid.tokens_per_slice)


def tubelet_share(masks: torch.Tensor, grid: TubeletGrid) -> torch.Tensor:
    """Masks (B x T x H x W, uint8 0-255 or float 0-1) -> B x L x N: the covered fraction of each tubelet."""
    m = masks.float() / (255.0 if masks.dtype == torch.uint8 else 1.0)
    t, ph, pw = grid.tubelet
    b = len(m)
    share = m.reshape(b, grid.slices, t, grid.grid_hw[0], ph, grid.grid_hw[1], pw).mean(dim=(2, 4, 6))
    return share.reshape(b, grid.slices, grid.tokens_per_slice)


def coverage(keep: torch.Tensor, share: torch.Tensor) -> float:
    """Actor share of the kept tubelets / actor share of all tubelets (pooled over clips); 1.0 = random."""
    keep = keep.float()
    kept = (share * keep).sum() / keep.sum().clamp_min(1.0)
    overall = share.mean()
    return float(kept / overall) if overall > 0 else float("nan")


def oracle_coverage(share: torch.Tensor, keep_ratio: float, stages: int) -> float:
    """Coverage of the selector that keeps, in every slice, the tubelets most covered by the actor."""
    n = share.shape[-1]
    k = tokens_to_keep(n, keep_ratio, stages)
    top = share.topk(k, dim=-1).indices
    keep = torch.zeros_like(share).scatter_(-1, top, 1.0)
    return coverage(keep, share)


@dataclass
class CoverageReading:
    keep_ratio: float
    coverage: float
    oracle: float
    #: Share of the kept tubelets covered by the bystander (a second person): privacy wants it near 0.
    bystander_kept: float


@torch.no_grad()
def published_masks(model, video: torch.Tensor, keep_ratio: float, stage: int | None = None) -> torch.Tensor:
    """The keep masks (B x L x N) that inference (eval mode, noise-free top-k) gives a batch ``video``: the
    published (final) mask, or the mask after selection ``stage`` (0-based) of an anonymizer. The model's
    training mode is restored."""
    was_training = model.training
    model.eval()
    if stage is None:
        _, keep = model.anonymize(video, keep_ratio)
    else:
        keep = model(video, keep_ratio=keep_ratio).decisions[stage]  # eval mode: the top-k path
    model.train(was_training)
    return keep


@torch.inference_mode()
def inference_masks(model, clips: ClipSet, keep_ratio: float, runtime: RuntimeConfig, batch_size: int = 64,
                    stage: int | None = None) -> torch.Tensor:
    """:func:`published_masks` over ``clips`` (their first view), in batches: C x L x N."""
    device = runtime.torch_device()
    return torch.cat([published_masks(model, to_float(clips.videos[start:start + batch_size, 0]).to(device),
                                      keep_ratio, stage).cpu()
                      for start in range(0, len(clips), batch_size)])


def actor_coverage(model, clips: ClipSet, keep_ratio: float, runtime: RuntimeConfig,
                   batch_size: int = 64, stage: int | None = None) -> CoverageReading:
    """What the inference-mode selector of ``model`` keeps on ``clips`` (which must carry actor masks), at the
    published (final) mask or after selection ``stage`` (0-based).

    In the paper's progressive design a tubelet kept at an early stage passes its content to the others before a
    later stage drops it, so the final mask need not keep the actor for the output to carry the action."""
    keep = inference_masks(model, clips, keep_ratio, runtime, batch_size, stage)
    stages = len(model.scorers) if stage is None else stage + 1
    return coverage_of(keep, clips, model.grid, keep_ratio, stages)


def coverage_of(keep: torch.Tensor, clips: ClipSet, grid: TubeletGrid, keep_ratio: float, stages: int
                ) -> CoverageReading:
    """The coverage reading of keep masks ``keep`` (C x L x N) on ``clips``, which must carry actor masks."""
    if clips.actor_masks is None:
        raise ValueError("actor coverage needs clips with actor masks (the synthetic renderer gives them)")
    share = tubelet_share(clips.actor_masks[:, 0], grid)
    bystander = torch.zeros_like(share)
    if clips.person_masks is not None:
        bystander = (tubelet_share(clips.person_masks[:, 0], grid) - share).clamp_min(0)
    kept_other = float((bystander * keep).sum() / keep.sum().clamp_min(1.0))
    return CoverageReading(keep_ratio, coverage(keep, share), oracle_coverage(share, keep_ratio, stages), kept_other)


def two_fold_readable(attributes: torch.Tensor) -> torch.Tensor:
    """Which attributes (columns of N x K labels) a 2-fold out-of-fold probe can read: two clips of each class."""
    counts = attributes.long().sum(0)
    return (counts >= 2) & (len(attributes) - counts >= 2)


def keep_pattern_leak(keep: torch.Tensor, attributes: torch.Tensor) -> float:
    """cMAP (%) of a fresh linear attacker (out-of-fold logistic regression) that reads the private attributes
    from keep masks (C x L x N) alone: what *which* tubelets a published video shows gives away. A lower bound
    on what a nonlinear attacker of the pattern reads (``benchmarks/leak_probe.py --mask-only`` trains the
    phase-3 suite on it); chance is the attributes' prior, about 50 on the synthetic benchmark."""
    from stprivacy.evaluation.leakage import linear_probe

    readable = two_fold_readable(attributes)
    if not readable.any():
        return float("nan")
    return float(linear_probe(keep.flatten(1).float().numpy(), attributes[:, readable]).mean())


def ridge_leak(published: ClipSet, cells: int = 16, alpha: float = 1e-3, limit: int = 1000) -> float:
    """cMAP (%) of the ridge attacker (:func:`~stprivacy.evaluation.ridge.ridge_probe`, out of fold) on the first
    view of the first ``limit`` published clips; NaN when the frames do not divide into the grid. On the
    synthetic benchmark it reads the output better than phase 3's trained attackers, in seconds, so phase 2 logs
    it every epoch: unlike the co-trained recognizers' reading it does not depend on how long anyone trained on
    the output."""
    from stprivacy.evaluation.ridge import ridge_probe

    videos = published.videos[:limit, 0]
    attributes = published.attributes[:limit]
    readable = two_fold_readable(attributes)
    if not readable.any() or videos.shape[-1] % cells or videos.shape[-2] % cells:
        return float("nan")
    return float(ridge_probe(to_float(videos), attributes[:, readable], cells, alpha).mean())


@torch.inference_mode()
def probe_head(model, clips: ClipSet, keep_ratio: float, runtime: RuntimeConfig, batch_size: int = 64) -> float:
    """Top-1 (%) of the phase-1 action head on ``clips`` under top-k selection at ``keep_ratio``."""
    device = runtime.torch_device()
    was_training = model.training
    model.eval()
    scores = []
    for start in range(0, len(clips), batch_size):
        x = to_float(clips.videos[start:start + batch_size, 0]).to(device)
        with runtime.autocast(device):
            scores.append(model(x, keep_ratio=keep_ratio).action_logits.float().cpu())  # eval mode: top-k
    model.train(was_training)
    return top1_accuracy(torch.cat(scores).numpy(), clips.actions.numpy())


@torch.inference_mode()
def probe_adversaries(action: nn.Module, privacy: list[nn.Module], published: ClipSet, runtime: RuntimeConfig,
                      batch_size: int = 64) -> tuple[float, float]:
    """Top-1 (%) of the auxiliary action recognizer and the worst-case cMAP (%) of the privacy recognizers on
    ``published`` clips (uint8 anonymized outputs with the masks the video shows)."""
    from stprivacy.training.supervised import predict

    states = [m.training for m in (action, *privacy)]
    use_mask = published.keep_masks is not None
    top1 = top1_accuracy(predict(action, published, "action", runtime, batch_size=batch_size, use_mask=use_mask),
                         published.actions.numpy())
    labels = published.attributes.numpy()
    worst = max(cmap(predict(p, published, "privacy", runtime, batch_size=batch_size, use_mask=use_mask), labels)
                for p in privacy)
    for m, state in zip((action, *privacy), states, strict=True):
        m.train(state)
    return top1, worst


@dataclass(frozen=True)
class PublicationGap:
    """What publishing (clamp to [0, 1], round to uint8, mask read off the video) takes from an output."""

    #: top-1 (%) of the action recognizer on the float output with the anonymizer's own keep mask
    float_top1: float
    #: top-1 (%) of the same recognizer on the published output with the mask the video shows
    published_top1: float
    #: share of the kept tubelets' pixels outside [0, 1] (clamped away)
    clamped: float
    #: share of the kept tubelets that the output paints black (every pixel rounds to 0: dropped, to an attacker)
    painted_black: float
    #: the published clips measured (uint8, first view, the masks the videos show), for other instruments to read
    #: without anonymizing them again
    published: ClipSet | None = None


@torch.inference_mode()
def publication_gap(model, action: nn.Module, clips: ClipSet, keep_ratio: float, runtime: RuntimeConfig,
                    batch_size: int = 64) -> PublicationGap:
    """How much of what a recognizer reads in the anonymizer's float output survives publication. A recognizer
    trained on the float output (phase 2's, unless ``train.bounded_output``) can read a code that a published
    video no longer carries; the gap between the two top-1s says how much of phase 2 was spent on it."""
    device = runtime.torch_device()
    states = model.training, action.training
    model.eval()
    action.eval()
    right_float = right_published = 0
    clamped = kept_pixels_total = black = kept_total = 0.0
    videos, masks = [], []
    for start in range(0, len(clips), batch_size):
        x = to_float(clips.videos[start:start + batch_size, 0]).to(device)
        labels = clips.actions[start:start + batch_size].to(device)
        video, keep = model.anonymize(x, keep_ratio)
        published = to_uint8(video)
        shown = keep_mask_from_video(published, model.grid).to(keep.dtype)
        videos.append(published.cpu())
        masks.append(shown.to(torch.uint8).cpu())
        right_float += int((action(video, keep).argmax(-1) == labels).sum())
        right_published += int((action(to_float(published), shown).argmax(-1) == labels).sum())
        kept_pixels = keep_mask_pixels(keep, model.grid).expand_as(video) > 0
        clamped += float(((video < 0) | (video > 1))[kept_pixels].sum())
        kept_pixels_total += float(kept_pixels.sum())
        black += float(((keep > 0) & (shown == 0)).sum())
        kept_total += float((keep > 0).sum())
    model.train(states[0])
    action.train(states[1])
    n = len(clips)
    published_clips = ClipSet(torch.cat(videos), clips.actions, clips.attributes, clips.action_names,
                              clips.attribute_names, actor_masks=_first_view(clips.actor_masks),
                              keep_masks=torch.cat(masks), names=clips.names)
    return PublicationGap(100.0 * right_float / n, 100.0 * right_published / n,
                          clamped / max(kept_pixels_total, 1.0), black / max(kept_total, 1.0), published_clips)


def _first_view(masks: torch.Tensor | None) -> torch.Tensor | None:
    """The first view of per-view masks (N x V x ...), or None."""
    return None if masks is None else masks[:, 0]
