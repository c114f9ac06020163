"""Frames as grids of cell means: what the linear attackers read (phase 3's ridge, phase 2's "linear" family)."""

from __future__ import annotations

import torch


def cell_mean_features(video: torch.Tensor, cells: int) -> torch.Tensor:
    """``B x 3 x T x H x W`` -> ``B x T x 3 cells cells``: every frame averaged over a ``cells`` x ``cells`` grid."""
    b, c, t, h, w = video.shape
    if h % cells or w % cells:
        raise ValueError(f"frame size {h} x {w} does not divide into a {cells} x {cells} grid of cells")
    blocks = video.float().reshape(b, c, t, cells, h // cells, cells, w // cells).mean(dim=(4, 6))
    return blocks.transpose(1, 2).reshape(b, t, -1)
