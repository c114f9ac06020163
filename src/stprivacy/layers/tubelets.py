"""Cutting a video into tubelets and back.

Tokens are ordered time-major: token ``s = l * N + n`` is spatial position ``n`` (row-major over the patch grid)
of temporal slice ``l``. Every module that reshapes tokens into ``(slices, tokens_per_slice)`` relies on it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TubeletGrid:
    """How a ``3 x T x H x W`` clip is cut into ``(t, p, p)`` tubelets."""

    num_frames: int
    height: int
    width: int
    tubelet: tuple[int, int, int]
    channels: int = 3

    def __post_init__(self) -> None:
        t, ph, pw = self.tubelet
        if self.num_frames % t or self.height % ph or self.width % pw:
            raise ValueError(
                f"clip {self.num_frames}x{self.height}x{self.width} is not divisible by tubelet {self.tubelet}"
            )

    @property
    def slices(self) -> int:
        """Number of temporal slices ``L``."""
        return self.num_frames // self.tubelet[0]

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.height // self.tubelet[1], self.width // self.tubelet[2]

    @property
    def tokens_per_slice(self) -> int:
        """Tokens per temporal slice ``N``."""
        gh, gw = self.grid_hw
        return gh * gw

    @property
    def num_tokens(self) -> int:
        return self.slices * self.tokens_per_slice

    @property
    def tubelet_numel(self) -> int:
        t, ph, pw = self.tubelet
        return self.channels * t * ph * pw

    def check_video(self, video: torch.Tensor) -> None:
        """Raise a clear error unless ``video`` is a float ``B x C x T x H x W`` clip of this grid's size."""
        if not isinstance(video, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor video, got {type(video).__name__}")
        if not video.is_floating_point():
            raise TypeError(f"expected a floating-point video (e.g. float32 in [0, 1]), got dtype {video.dtype}")
        expected = (self.channels, self.num_frames, self.height, self.width)
        if video.dim() != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(
                f"expected a video of shape B x {' x '.join(map(str, expected))} (B x C x T x H x W), "
                f"got {tuple(video.shape)}"
            )


def video_to_tubelets(video: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """``B x C x T x H x W`` -> ``B x S x (C*t*p*p)``, tokens time-major, pixels ordered (c, t, y, x)."""
    b, c, T, H, W = video.shape
    t, ph, pw = tubelet
    x = video.reshape(b, c, T // t, t, H // ph, ph, W // pw, pw)
    # b c L t gh ph gw pw -> b (L gh gw) (c t ph pw)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)
    return x.reshape(b, (T // t) * (H // ph) * (W // pw), c * t * ph * pw)


def shown_tubelets(video: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """``B x C x T x H x W`` (uint8 or float) -> ``B x S`` bool: the tubelets with a non-zero pixel, i.e. the ones
    a published video shows (a dropped tubelet, or a kept one painted black, is all zero)."""
    return video_to_tubelets(video != 0, tubelet).any(-1)


def keep_mask_pixels(mask: torch.Tensor, grid: TubeletGrid) -> torch.Tensor:
    """A B x slices x tokens-per-slice keep mask as a B x 1 x T x H x W pixel mask (1 where a tubelet is kept);
    differentiable, so a straight-through mask keeps its gradient."""
    b = mask.shape[0]
    t, ph, pw = grid.tubelet
    tokens = mask.reshape(b, -1, 1).expand(b, grid.num_tokens, t * ph * pw)
    return tubelets_to_video(tokens, replace(grid, channels=1))


def kept_pixels(video: torch.Tensor, mask: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """``video`` (B x C x T x H x W) with every tubelet that ``mask`` (B x slices x tokens-per-slice) drops set to
    black: the original pixels of the kept tubelets. A straight-through mask keeps its gradient."""
    _, c, t, h, w = video.shape
    return video * keep_mask_pixels(mask, TubeletGrid(t, h, w, tubelet, c)).to(video.dtype)


def temporal_residual(tubelets: torch.Tensor, keep_mask: torch.Tensor, level: float = 0.5) -> torch.Tensor:
    """``B x S x P`` tubelets and their ``B x L x N`` keep mask -> every kept tubelet as ``level`` plus its
    difference from the keep-weighted mean of the kept tubelets at its position over the ``L`` slices; dropped
    tubelets are zero. What stays the same over a clip is gone; what changes is kept. Differentiable in both
    arguments (a straight-through mask keeps its gradient)."""
    b, slices, n = keep_mask.shape
    p = tubelets.reshape(b, slices, n, -1)
    k = keep_mask.reshape(b, slices, n, 1).to(p.dtype)
    mean = (p * k).sum(dim=1, keepdim=True) / k.sum(dim=1, keepdim=True).clamp_min(1.0)
    return ((p - mean + level) * k).reshape(tubelets.shape)


def residual_video(video: torch.Tensor, keep_mask: torch.Tensor, tubelet: tuple[int, int, int]) -> torch.Tensor:
    """:func:`temporal_residual` of a ``B x C x T x H x W`` video, as a video."""
    _, c, t, h, w = video.shape
    grid = TubeletGrid(t, h, w, tubelet, c)
    return tubelets_to_video(temporal_residual(video_to_tubelets(video, tubelet), keep_mask), grid)


def tubelets_to_video(tokens: torch.Tensor, grid: TubeletGrid) -> torch.Tensor:
    """Inverse of :func:`video_to_tubelets`: ``B x S x (C*t*p*p)`` -> ``B x C x T x H x W``."""
    b = tokens.shape[0]
    t, ph, pw = grid.tubelet
    gh, gw = grid.grid_hw
    x = tokens.reshape(b, grid.slices, gh, gw, grid.channels, t, ph, pw)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)
    return x.reshape(b, grid.channels, grid.num_frames, grid.height, grid.width)


class TubeletEmbed(nn.Module):
    """One linear map per tubelet: ``B x C x T x H x W`` -> ``B x S x D``, tokens time-major.

    The weights stay a ``Conv3d`` with kernel = stride = tubelet (so ImageNet patch kernels inflate into it and
    checkpoints keep their keys), but the map is computed as one matrix product over the unfolded tubelets: on a
    CPU that is 2-4x faster than the convolution, whose backward towards a video that needs gradients (phase 2's
    recognizers read the anonymizer's output) is slowest of all (``benchmarks/train_speed.py``).

    With ``mean`` and ``std`` the video is standardised per channel first, folded into the weights
    (``conv((x - m) / s) = conv'(x)`` with ``w' = w / s`` and ``b' = b - sum(w m / s)``): the same map without two
    passes over the video.
    """

    def __init__(self, grid: TubeletGrid, dim: int, mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None):
        super().__init__()
        self.grid = grid
        self.proj = nn.Conv3d(grid.channels, dim, kernel_size=grid.tubelet, stride=grid.tubelet)
        self.standardize = mean is not None
        if self.standardize:
            if std is None or len(mean) != grid.channels or len(std) != grid.channels:
                raise ValueError(f"mean and std need {grid.channels} values each")
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1, 1), persistent=False)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        weight, bias = self.proj.weight, self.proj.bias
        if self.standardize:
            weight = weight / self.std.to(weight.dtype)
            bias = bias - (weight * self.mean.to(weight.dtype)).sum((1, 2, 3, 4))
        return F.linear(video_to_tubelets(video, self.grid.tubelet), weight.flatten(1), bias)
