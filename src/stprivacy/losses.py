"""The losses of the three phases, as pure functions (no state, no model calls).

Sign convention of the adversarial objective (phase 2, the anonymizer's step):

    L_anon = L_spars + lambda_A * CE(A(f(x)), y) - lambda_P * BCE(P(f(x)), z)

The anonymizer keeps actions recognizable (small CE) while making the privacy recognizer wrong (large BCE).
The recognizers A and P minimise their own CE / BCE in alternate steps. Paper: lambda_A = lambda_P = 0.5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def keep_ratio_loss(decisions: list[torch.Tensor], stage_ratios: list[float]) -> torch.Tensor:
    """``mean over stages m, slices l (and clips) of (mean_n mask_m(l, n) - rho_m)^2``.

    ``decisions``: one B x L x N keep mask per stage; ``stage_ratios``: the targets ``rho_m = a^m``.
    Per slice, not per clip: the authors found the clip-level version unstable.
    """
    if len(decisions) != len(stage_ratios):
        raise ValueError(f"{len(decisions)} stage decisions but {len(stage_ratios)} target ratios")
    if not decisions:
        raise ValueError("keep_ratio_loss needs at least one selection stage")
    terms = [(d.mean(dim=-1) - rho).pow(2).mean() for d, rho in zip(decisions, stage_ratios, strict=True)]
    return torch.stack(terms).mean()


def action_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of B x C logits against B integer labels."""
    return F.cross_entropy(logits, labels)


def privacy_loss(logits: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Multi-label binary cross-entropy, B x K logits against B x K {0, 1} attribute labels."""
    return F.binary_cross_entropy_with_logits(logits, attributes.to(logits.dtype))


def confusion_loss(logits: torch.Tensor) -> torch.Tensor:
    """``BCE(sigmoid(logits), 1/2) - ln 2`` averaged over clips and attributes: 0 exactly when every prediction
    is 1/2, growing with the information the predictions carry in *either* direction (a confidently wrong
    recognizer is penalised as much as a confidently right one). Phase 2's ``confusion`` privacy objective."""
    half = torch.full_like(logits, 0.5)
    return F.binary_cross_entropy_with_logits(logits, half) - math.log(2.0)


def publish(video: torch.Tensor, straight_through_clamp: bool = False) -> torch.Tensor:
    """What deployment does to a float output, in a form training can differentiate: clamp to [0, 1] and round to
    the 256 levels of a uint8 video, the rounding with a straight-through gradient. The recognizers of phase 2
    then see what phase 3's attackers will see; without it, information can hide outside [0, 1] or below 1/255.

    The clamp's own gradient is zero outside [0, 1]: a saturated pixel gets no gradient from any recognizer, so
    what it shows cannot be changed by the min-max. With ``straight_through_clamp`` the clamp passes the gradient
    as if it were the identity (the forward value is the same)."""
    v = video.clamp(0.0, 1.0)
    if straight_through_clamp:
        v = video + (v - video).detach()
    return v + ((v * 255).round() / 255 - v).detach()


def anonymizer_objective(
    spars: torch.Tensor, action_ce: torch.Tensor, privacy_bce: torch.Tensor, lambda_a: float, lambda_p: float
) -> torch.Tensor:
    """``L_spars + lambda_A * CE - lambda_P * BCE`` (phase 2, anonymizer step)."""
    return spars + lambda_a * action_ce - lambda_p * privacy_bce


def masked_reconstruction_loss(output: torch.Tensor, target: torch.Tensor, keep_mask: torch.Tensor,
                               tubelet: tuple[int, int, int], residual: bool = False) -> torch.Tensor:
    """Mean absolute error over the kept tubelets only (B x 3 x T x H x W videos, B x L x N mask). ``residual``:
    the target as a ``model.temporal_residual`` anonymizer can publish it (grey plus what changes over time).

    The mask is detached: it says *where* to reconstruct, and must not train the selector. With its gradient,
    this term rewards dropping whatever is hard to reconstruct (the moving actor), and the selector learned to
    keep background (actor coverage 0.22 in the demo's phase 1; ``tests/test_losses.py`` pins it)."""
    from stprivacy.layers.tubelets import residual_video, video_to_tubelets

    if residual:
        target = residual_video(target, keep_mask.detach().to(target.dtype), tubelet)
    return mean_over_kept(video_to_tubelets((output - target).abs(), tubelet).mean(-1), keep_mask)


def mean_over_kept(per_tubelet: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """Mean of a B x S per-tubelet value over the kept tubelets; the mask is detached (it says where to measure
    and must not train the selector)."""
    keep = keep_mask.detach().reshape(per_tubelet.shape).to(per_tubelet.dtype)
    return (per_tubelet * keep).sum() / keep.sum().clamp_min(1.0)


def output_energy(output: torch.Tensor, keep_mask: torch.Tensor, tubelet: tuple[int, int, int],
                  level: float = 0.5) -> torch.Tensor:
    """Mean squared deviation of the kept tubelets' pixels from a flat ``level`` (mid-grey): the rate of the output.

    Phase 2's ``output_energy`` term. Nothing else in the anonymizer's objective asks it to *remove* what the
    action does not need: it only has to fool a co-trained privacy recognizer, which it does with a saturated
    pixel code that a fresh attacker reads back (docs/results/leak_demo.png). Every pixel that departs from grey
    costs here, so whatever the action recognizer does not pay for decays. The mask is detached: it says where
    to measure and must not teach the selector to drop tubelets (what ``keep_ratio_loss`` governs)."""
    from stprivacy.layers.tubelets import video_to_tubelets

    return mean_over_kept(video_to_tubelets((output - level).pow(2), tubelet).mean(-1), keep_mask)


def motion_anchor_loss(output: torch.Tensor, video: torch.Tensor, keep_mask: torch.Tensor,
                       tubelet: tuple[int, int, int], cell: int = 8) -> torch.Tensor:
    """Mean absolute difference between the motion energy (:func:`~stprivacy.layers.cells.motion_energy_cells`)
    of the output's kept tubelets and that of the input's own pixels there: the output may change over time
    where and as strongly as the input does, no more and no less. Phase 2's ``motion_anchor`` term: an
    anonymizer that writes an attribute into how its tubelets flicker pays for it. The mask is detached."""
    from stprivacy.layers.cells import motion_energy_cells
    from stprivacy.layers.tubelets import kept_pixels

    keep = keep_mask.detach()
    mine = motion_energy_cells(kept_pixels(output, keep, tubelet), cell)
    theirs = motion_energy_cells(kept_pixels(video, keep, tubelet), cell)
    return (mine - theirs.detach()).abs().mean()


def spatial_variation(output: torch.Tensor, keep_mask: torch.Tensor, tubelet: tuple[int, int, int]
                      ) -> torch.Tensor:
    """Mean absolute difference of horizontally and vertically neighbouring pixels inside the kept tubelets
    (anisotropic total variation, per frame; differences across a tubelet border are not counted, so a kept
    tubelet next to a black dropped one costs nothing). Phase 2's ``output_tv`` term: fine patterns cost."""
    from stprivacy.layers.tubelets import video_to_tubelets

    _, ph, pw = tubelet
    tubes = video_to_tubelets(output, tubelet)  # B x S x (C * t * ph * pw)
    tubes = tubes.reshape(*tubes.shape[:2], -1, ph, pw)
    tv = (tubes[..., 1:, :] - tubes[..., :-1, :]).abs().mean((-1, -2, -3)) \
        + (tubes[..., :, 1:] - tubes[..., :, :-1]).abs().mean((-1, -2, -3))
    return mean_over_kept(tv, keep_mask)


def attribute_discrepancy(features: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """How far the features of clips depend on each private attribute, measured without a learner.

    For every attribute k the clips split into those with z_k = 1 and those with z_k = 0; the term is the squared
    difference of the two groups' mean features, each feature in units of its standard deviation over all the
    clips (detached), averaged over features and over the attributes whose groups both have two clips or more.
    On random nonlinear features this is a maximum mean discrepancy under the features' kernel: zero when the
    groups agree in distribution as far as those features can tell. ``features``: N x D; ``attributes``: N x K."""
    if features.dim() != 2 or attributes.dim() != 2 or len(features) != len(attributes):
        raise ValueError(f"attribute_discrepancy needs N x D features and N x K attributes, got "
                         f"{tuple(features.shape)} and {tuple(attributes.shape)}")
    x = features.float()
    std = x.detach().std(dim=0).clamp_min(1e-4) if len(x) > 1 else torch.ones_like(x[0])
    terms = []
    for z in attributes.bool().T:
        if z.sum() < 2 or (~z).sum() < 2:
            continue  # a group too small to have a mean
        terms.append(((x[z].mean(0) - x[~z].mean(0)) / std).pow(2).mean())
    return torch.stack(terms).mean() if terms else x.sum() * 0.0


# ------------------------------------------------------------------------------------------- learned baselines
def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of independent Bernoulli predictions given as logits; largest (ln 2) at p = 1/2.

    The privacy term of BDQ (maximised) and, negated, VITA's privacy budget."""
    p = torch.sigmoid(logits)
    # -p log p - (1 - p) log(1 - p), written with logsigmoid so that saturated logits stay finite
    return -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross-entropy for B positive pairs (rows of ``z1`` and ``z2``).

    Each of the 2B embeddings must pick its partner among the other 2B - 1 by cosine similarity / temperature."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent needs two B x D batches, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    b = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, partner)
