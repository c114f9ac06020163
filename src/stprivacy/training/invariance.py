"""``colour_invariance`` (phase 2): the anonymizer's output may not change when the input's colours do;
``phase1_colour_invariance``: neither may the choice of which tubelets it publishes; ``dropped_invariance``
(phase 2): nor may the output change when what it drops does.

Why: a fresh per-frame CNN reads skin colour and bare limbs back from every recipe of the min-max (74-85 AP on
validation, docs/results/recipe_study.md): the co-trained privacy recognizer lags the anonymizer, so whatever
code the anonymizer paints with, a learner given the final output long enough reads it. This term needs no
learner. The same clip is passed twice, once as it is and once re-coloured at random (:func:`random_recolour`),
through the *same* keep decisions, and the kept tubelets of the two outputs must agree. An output that satisfies
it carries no function of absolute colour: not the skin tone, whatever code it is painted in. Motion, and with it
the action, survives any re-colouring, so the action recognizer loses nothing it needs. Shapes survive too, so
this term does not touch the attributes that are shapes (gender's skirt and hair); the min-max still does.

The same holds for the selection. A selector that ranks tokens by their colour (a dark arm against a light wall,
a bare limb against a shirt) publishes a keep pattern that tells skin tone and nudity by itself: the suite reads
them from the masks alone at 60-73 AP. :func:`selection_invariance_loss` asks the scorers to rank the tokens of
every slice the same way on the clip and on a re-coloured copy, under the same earlier decisions.

A dropped tubelet is not published, but before the first selection every token attends to every other, so the
kept tokens carry what the dropped ones showed (the bystander at the side, the actor's dropped limbs) and the
decoder can paint it into the kept tubelets: the ridge reads relationship at 69-72 AP from outputs that keep
2-3 % of the bystander's pixels. :func:`dropped_invariance_loss` replaces the dropped tubelets of each clip with
those of another clip of the batch and asks the kept tubelets of the output not to change.

``shape_invariance`` (phase 2) does for outlines what the re-colouring does for colours: every frame of the clip
is grown or shrunk by a grey-level dilation or erosion (:func:`random_morphology`, per clip), which moves every
edge by a pixel or two and keeps poses and motion, and the kept tubelets must agree. Gender in the synthetic
benchmark is a skirt and long hair, nudity the width of bare limbs: outlines that survive any re-colouring.

The re-colouring is per clip and per channel: a random channel order, a random gamma (log-uniform in
[1/``gamma``, ``gamma``]) and, with probability one half, an inversion (x -> 1 - x). With inversions and channel
swaps, no colour keeps its rank or its ratio to another across draws (a monotone-only family would leave "skin
brighter than the shirt" readable).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stprivacy.layers.tubelets import TubeletGrid, keep_mask_pixels
from stprivacy.losses import masked_reconstruction_loss


def random_recolour(video: torch.Tensor, gamma: float = 2.5, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """A random per-clip, per-channel re-colouring of ``B x 3 x T x H x W`` video in [0, 1] (same shape)."""
    if video.dim() != 5:
        raise ValueError(f"expected B x C x T x H x W, got {tuple(video.shape)}")
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma}")
    b, c = video.shape[:2]
    order = torch.argsort(torch.rand(b, c, generator=generator), dim=1)
    exponent = torch.exp((2 * torch.rand(b, c, generator=generator) - 1) * math.log(gamma))
    invert = torch.rand(b, c, generator=generator) < 0.5
    shape = (b, c, 1, 1, 1)
    x = video.clamp(0.0, 1.0)
    x = x.gather(1, order.to(video.device).view(shape).expand_as(x))
    x = x.pow(exponent.to(video.device, video.dtype).view(shape))
    return torch.where(invert.to(video.device).view(shape), 1.0 - x, x)


def random_morphology(video: torch.Tensor, size: int = 3, generator: torch.Generator | None = None
                      ) -> torch.Tensor:
    """``B x C x T x H x W`` video with every frame of each clip either dilated (a ``size`` x ``size`` maximum
    filter: bright regions grow) or eroded (a minimum filter: dark regions grow), drawn per clip; same shape.
    An even ``size`` shifts the result by half a pixel, as a morphology with an even kernel does."""
    if video.dim() != 5:
        raise ValueError(f"expected B x C x T x H x W, got {tuple(video.shape)}")
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size}")
    b, c, t, h, w = video.shape
    # an erosion is a dilation of the negated frames: one filter pass serves both kinds of clip
    sign = torch.where(torch.rand(b, generator=generator) < 0.5, 1.0, -1.0).to(video.device, video.dtype)
    frames = (video * sign.view(b, 1, 1, 1, 1)).transpose(1, 2).reshape(b * t, c, h, w)
    return _max_filter(frames, size).reshape(b, t, c, h, w).transpose(1, 2) * sign.view(b, 1, 1, 1, 1)


def _max_filter(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``N x C x H x W`` -> the maximum over each pixel's ``size`` x ``size`` neighbourhood (edges replicated)."""
    pad = (size // 2, (size - 1) // 2, size // 2, (size - 1) // 2)
    return F.max_pool2d(F.pad(frames, pad, mode="replicate"), size, stride=1)


def shape_invariance_loss(f, video: torch.Tensor, out, keep_ratio: float, tubelet: tuple[int, int, int],
                          size: int = 3) -> torch.Tensor:
    """Mean absolute difference between the kept tubelets of ``out`` and of the output on a dilated or eroded
    copy of ``video`` (:func:`random_morphology`), through the same (detached) keep decisions."""
    return kept_difference(f, random_morphology(video, size), out, keep_ratio, tubelet)


def colour_invariance_loss(f, video: torch.Tensor, out, keep_ratio: float, tubelet: tuple[int, int, int],
                           gamma: float = 2.5) -> torch.Tensor:
    """Mean absolute difference between the kept tubelets of ``out`` (the anonymizer's training-mode output on
    ``video``) and of the output on a re-coloured copy, decoded through the same (detached) keep decisions, so
    that the two outputs differ only by what the anonymizer paints. Gradients reach both passes."""
    return kept_difference(f, random_recolour(video, gamma), out, keep_ratio, tubelet)


def kept_difference(f, altered: torch.Tensor, out, keep_ratio: float, tubelet: tuple[int, int, int]
                    ) -> torch.Tensor:
    """Mean absolute difference over the kept tubelets between ``out`` and the anonymizer's pass on ``altered``
    through the same (detached) keep decisions, so that the two outputs differ only by what it paints."""
    other = f(altered, stage_masks=[d.detach() for d in out.decisions], keep_ratio=keep_ratio)
    return masked_reconstruction_loss(out.video, other.video, out.keep_mask, tubelet)


def standardised_per_slice(logits: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """``logits`` (B x L x N) centred and scaled over the ``live`` (B x L x N, 1 = still competing) tokens of each
    slice: what top-k reads of them is their order, so neither a shift nor a scale of a slice should count."""
    n = live.sum(-1, keepdim=True).clamp(min=1.0)
    mean = (logits * live).sum(-1, keepdim=True) / n
    var = (((logits - mean) * live) ** 2).sum(-1, keepdim=True) / n
    return (logits - mean) / (var + 1e-4).sqrt()


def selection_invariance_loss(logits: list[torch.Tensor], other: list[torch.Tensor],
                              decisions: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared difference between two passes' per-slice standardised keep logits, stage by stage, over the
    tokens still competing at that stage (every token at the first, then those the previous ``decisions``
    kept). Both passes ran under the same ``decisions``, so a stage's logits differ only by what the scorer read
    differently from the two inputs. Gradients reach both passes."""
    live = torch.ones_like(logits[0])
    total = logits[0].new_zeros(())
    for mine, theirs, decided in zip(logits, other, decisions, strict=True):
        diff = (standardised_per_slice(mine.float(), live) - standardised_per_slice(theirs.float(), live)) ** 2
        total = total + (diff * live).sum() / live.sum().clamp(min=1.0)
        live = decided.detach().round().to(live.dtype)
    return total / len(logits)


def phase1_selection_invariance(f, video: torch.Tensor, out, keep_ratio: float, gamma: float = 2.5
                                ) -> torch.Tensor:
    """:func:`selection_invariance_loss` between ``out`` (the anonymizer's training-mode output on ``video``) and
    its pass on a re-coloured copy through the same (detached) keep decisions."""
    decisions = [d.detach() for d in out.decisions]
    other = f(random_recolour(video, gamma), stage_masks=decisions, keep_ratio=keep_ratio)
    return selection_invariance_loss(out.keep_logits, other.keep_logits, decisions)


def swap_dropped(video: torch.Tensor, keep_mask: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """``video`` (B x C x T x H x W) with every tubelet that ``keep_mask`` (B x L x N) drops taken from the next
    clip of the batch (cyclically) instead; the kept tubelets are untouched."""
    _, c, t, h, w = video.shape
    kept = keep_mask_pixels(keep_mask.detach(), TubeletGrid(t, h, w, tubelet, c)) > 0.5
    return torch.where(kept, video, video.roll(1, dims=0))


def dropped_invariance_loss(f, video: torch.Tensor, out, keep_ratio: float, tubelet: tuple[int, int, int]
                            ) -> torch.Tensor:
    """Mean absolute difference between the kept tubelets of ``out`` (the anonymizer's training-mode output on
    ``video``) and of its output on :func:`swap_dropped` ``video``, through the same (detached) keep decisions:
    what the output shows may depend on the kept tubelets alone. Gradients reach both passes."""
    return kept_difference(f, swap_dropped(video, out.keep_mask, tubelet), out, keep_ratio, tubelet)
