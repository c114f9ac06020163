"""A linear eraser on what a rank-limited decoder publishes: no linear reader of a clip's decoder coefficients can
tell its private attributes better than chance on the clips it was fitted on (LEACE, Belrose et al., NeurIPS
2023, fitted with the ``concept-erasure`` package).

Why: with a rank-r decoder (``model.output_rank`` or ``train.phase2_output_rank``), every kept tubelet is the
decoder's bias plus a combination of r fixed pixel patterns, so a published clip is a short vector of
coefficients (slices x positions x r). Every min-max adversary tried on the synthetic benchmark either could not
read that vector or, in reading it, pulled the anonymizer into chasing it (docs/results/recipe_study.md), while a
ridge fitted on published training clips reads the attributes back from small, consistent shifts of it. The
eraser removes those shifts in closed form: an affine map of the coefficient vector, fitted once after phase 2 on
the anonymized training clips and their attribute labels, after which every attribute group has the same mean
vector. It is the least change (in the coefficients' own covariance metric) that does so. It removes all the
variance along the directions it erases, so whatever action the anonymizer carries there goes too; every
projection that equalises the group means has the same kernel, so no other linear eraser would keep more.

What the linear correction does not do: a non-linear reader may still find the attributes (a difference of
variance is untouched), and the guarantee holds on the fitting clips; on new clips it holds as far as the fitted
group means generalise. The ridge attacker reads cell mean squares, which are quadratic in the coefficients, and
read 58-61 cMAP after the linear correction. An optional :class:`SecondOrderGuard` after it (fitted by
``training.erasure.fit_second_order_guard``) is a small residual network on the live coefficients, trained once
against a reader that is solved again in closed form at every step (no adversary to chase), so that no linear
reader of the coefficients, their squares and their products within a tubelet beats a constant predictor on the
fitting clips.

An eraser serves one set of per-stage keep counts (the coefficients at a = 0.7 are not those at a = 0.4). It works
on the full slices x positions x r grid with dropped positions at zero, so that a learned selector, whose kept
positions differ from clip to clip, is served like a fixed pattern.
"""

from __future__ import annotations

import torch
from torch import nn

from stprivacy.config import MAX_ERASURE_RANK


def eraser_key(counts: list[int]) -> str:
    """The key of the eraser that serves these per-stage keep counts (a ``ModuleDict`` key: no dots)."""
    return "k" + "_".join(str(c) for c in counts)


def decoder_basis(decode, dim: int, tol: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine decoder ``decode`` (``... x dim`` features -> ``... x P`` pixels) as ``(basis, offset)``: the
    orthonormal ``P x r`` basis of its range and its value at zero, so that every decoded tubelet is
    ``offset + basis @ c`` for some r coefficients ``c``. ``r`` counts the singular values above ``tol`` times the
    largest; a decoder of rank above :data:`MAX_ERASURE_RANK` is refused."""
    with torch.no_grad():
        probe = torch.cat([torch.zeros(1, dim), torch.eye(dim)])
        decoded = decode(probe).double()
    offset, weight = decoded[0], (decoded[1:] - decoded[0]).T  # P x dim
    u, s, _ = torch.linalg.svd(weight, full_matrices=False)
    rank = int((s > tol * s[0]).sum()) if s.numel() and s[0] > 0 else 0
    if not 0 < rank <= MAX_ERASURE_RANK:
        raise ValueError(f"linear erasure needs a decoder of rank 1 to {MAX_ERASURE_RANK}, this one has rank {rank} "
                         "(set model.output_rank or train.phase2_output_rank)")
    return u[:, :rank].float(), offset.float()


class LinearEraser(nn.Module):
    """Decoded tubelets (``B x S x P``, dropped ones zero) -> the same with the clip's coefficient vector ``c``
    (``B x S*r``, zero at dropped positions) corrected on its ``live`` entries, ``x -> x - ((x - mean) @ right.T)
    @ left.T``: the identity minus a correction of rank at most the number of attributes, followed by its
    :class:`SecondOrderGuard` when it has one and by fresh noise when its ``noise`` is set."""

    def __init__(self, basis: torch.Tensor, offset: torch.Tensor, live: torch.Tensor, left: torch.Tensor,
                 right: torch.Tensor, mean: torch.Tensor, keep_ratio: float, tubelets: int,
                 guard: SecondOrderGuard | None = None):
        super().__init__()
        if (basis.dim() != 2 or offset.shape != basis.shape[:1] or live.dim() != 1 or left.dim() != 2
                or right.shape != left.T.shape or mean.shape != left.shape[:1] or len(live) != len(mean)):
            raise ValueError(f"eraser shapes do not fit: basis {tuple(basis.shape)}, offset {tuple(offset.shape)}, "
                             f"live {tuple(live.shape)}, left {tuple(left.shape)}, right {tuple(right.shape)}, "
                             f"mean {tuple(mean.shape)}")
        for name, value in (("basis", basis), ("offset", offset)):
            self.register_buffer(name, value.detach().float().clone())  # never shared between erasers
        # the correction in float64: its factors come from a whitening, and in float32 a poorly conditioned fit
        # loses digits (ONNX and PyTorch then disagreed by 2e-3 on a 24-clip test fit)
        for name, value in (("left", left), ("right", right), ("mean", mean)):
            self.register_buffer(name, value.detach().double().clone())
        #: the coefficients that some fitting clip published (the rest were dropped in every one): the eraser
        #: works on these alone, so that a position every clip drops stays exactly zero and the fitted guarantee
        #: holds exactly for a fixed keep pattern. (A learned selector's clips drop different positions; zeroing
        #: those again after the correction makes the guarantee approximate there.)
        self.register_buffer("live", live.detach().long().clone())
        #: the keep ratio it was fitted at (for messages; the counts in its key are what it serves)
        self.register_buffer("keep_ratio", torch.tensor(float(keep_ratio)))
        #: tubelets per clip (slices x positions) of the clips it was fitted on
        self.register_buffer("tubelets", torch.tensor(int(tubelets)))
        #: optional, applied to the live coefficients after the linear correction
        self.guard = guard
        #: standard deviation of the fresh Gaussian noise added to each live coefficient after the guard, at
        #: every publication (``train.erasure_noise`` times the coefficient's spread; zero: none). It drowns the
        #: fine detail of a coefficient's distribution that an MLP reads and the guard's second-order objective
        #: does not see; the action, carried by coarse motion over many tubelets, pays little for it
        #: (docs/results/recipe_study.md, fifteenth session)
        self.register_buffer("noise", torch.zeros(len(live), dtype=torch.float64))

    @classmethod
    def empty(cls, pixels: int, rank: int, live: int, directions: int, guard_hidden: int = 0) -> LinearEraser:
        """An eraser of the given shape (zeros), for a saved one to be loaded into (``guard_hidden``: the width of
        its :class:`SecondOrderGuard`, 0 for none)."""
        guard = SecondOrderGuard(torch.zeros(live), torch.ones(live), guard_hidden) if guard_hidden else None
        if guard is not None:  # frozen, as a fitted one is: nothing trains an eraser by gradient
            guard.requires_grad_(False)
        return cls(torch.zeros(pixels, rank), torch.zeros(pixels), torch.zeros(live, dtype=torch.long),
                   torch.zeros(live, directions), torch.zeros(directions, live), torch.zeros(live), 0.0, 0, guard)

    @classmethod
    def fit(cls, basis: torch.Tensor, offset: torch.Tensor, coefficients: torch.Tensor, attributes: torch.Tensor,
            keep_ratio: float) -> LinearEraser:
        """LEACE on the clips' coefficient vectors (N x S x r, :func:`coefficients`) against ``attributes``
        (N x K in {0, 1})."""
        from concept_erasure import LeaceFitter  # needed to fit one; applying a saved eraser needs only torch

        if attributes.dim() != 2 or len(coefficients) != len(attributes):
            raise ValueError(f"expected N x K attributes for {len(coefficients)} clips, got {tuple(attributes.shape)}")
        if len(coefficients) < 2:
            raise ValueError("an eraser needs at least 2 clips to fit")
        x = coefficients.flatten(1).double()
        live = live_entries(x)
        eraser = LeaceFitter.fit(x[:, live], attributes.double()).eraser
        return cls(basis, offset, live, eraser.proj_left, eraser.proj_right, eraser.bias, keep_ratio,
                   coefficients.shape[1])

    @classmethod
    def without_correction(cls, basis: torch.Tensor, offset: torch.Tensor, coefficients: torch.Tensor,
                           keep_ratio: float) -> LinearEraser:
        """An eraser whose linear correction is the identity (no direction erased), on the live coefficients of
        ``coefficients`` (N x S x r): a frame for a :class:`SecondOrderGuard` alone, where erasing whole
        directions costs too much of the action (``train.erasure_guard_only_keep_ratios``)."""
        live = live_entries(coefficients.flatten(1))
        n = len(live)
        return cls(basis, offset, live, torch.zeros(n, 0), torch.zeros(0, n), torch.zeros(n), keep_ratio,
                   coefficients.shape[1])

    def forward(self, tubelets: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        b, s, p = tubelets.shape
        if p != self.basis.shape[0] or s != int(self.tubelets):
            raise ValueError(f"this eraser takes {int(self.tubelets)} tubelets of {self.basis.shape[0]} values, "
                             f"got {s} of {p}")
        basis, offset = self.basis.to(tubelets.dtype), self.offset.to(tubelets.dtype)
        c = self.erase_coefficients(coefficients(tubelets, keep, basis, offset))
        kept = keep.reshape(b, s, 1).to(tubelets.dtype)
        return (offset + c @ basis.T) * kept

    def erase_coefficients(self, c: torch.Tensor) -> torch.Tensor:
        """``B x S x r`` coefficients (zero where dropped) -> the same with the live entries corrected."""
        flat = c.flatten(1)  # not reshape(len(c), -1): a traced export would fix the batch size
        x = self.correct(flat[:, self.live].double())
        if self.guard is not None:
            x = self.guard(x)
        if bool(self.noise.any()):  # fresh at every call: the same clip published twice gets two draws
            x = x + torch.randn_like(x) * self.noise
        return flat.index_copy(1, self.live, x.to(c.dtype)).reshape(c.shape)

    def correct(self, x: torch.Tensor) -> torch.Tensor:
        """The linear correction alone, on ``N x live`` coefficients (float64)."""
        return x - ((x - self.mean) @ self.right.T) @ self.left.T


class SecondOrderGuard(nn.Module):
    """``N x d`` live coefficients -> ``x + scale * net((x - centre) / scale)``, ``net`` a one-hidden-layer tanh
    network whose output layer starts at zero (so an unfitted guard is the identity), in float64 like the
    correction before it."""

    def __init__(self, centre: torch.Tensor, scale: torch.Tensor, hidden: int):
        super().__init__()
        if centre.dim() != 1 or scale.shape != centre.shape or hidden < 1:
            raise ValueError(f"guard shapes do not fit: centre {tuple(centre.shape)}, scale {tuple(scale.shape)}, "
                             f"hidden {hidden}")
        self.register_buffer("centre", centre.detach().double().clone())
        self.register_buffer("scale", scale.detach().double().clone())
        d = len(centre)
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, d)).double()
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` standardised as the guard sees it, and after it: ``(x - centre) / scale`` plus the network's
        change (what :func:`~stprivacy.training.erasure.fit_second_order_guard` optimises)."""
        z = (x - self.centre) / self.scale
        return z + self.net(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardised(x) * self.scale + self.centre


def live_entries(x: torch.Tensor) -> torch.Tensor:
    """Indices of the columns of ``N x D`` flattened coefficients that some fitting clip published (non-zero)."""
    live = (x != 0).any(dim=0).nonzero().flatten()
    if not len(live):
        raise ValueError("every fitting clip dropped every tubelet: nothing to fit an eraser on")
    return live


def coefficients(tubelets: torch.Tensor, keep: torch.Tensor, basis: torch.Tensor, offset: torch.Tensor
                 ) -> torch.Tensor:
    """``B x S x P`` decoded tubelets -> ``B x S x r`` coordinates in the decoder's basis, zero where dropped."""
    kept = keep.reshape(*tubelets.shape[:2], 1).to(tubelets.dtype)
    return ((tubelets - offset.to(tubelets.dtype)) @ basis.to(tubelets.dtype)) * kept
