"""Frames as grids of cell means: what the linear attackers read (phase 3's ridge, phase 2's "linear" family)."""

from __future__ import annotations

import torch


def cell_mean_features(video: torch.Tensor, cells: int, moments: int = 1) -> torch.Tensor:
    """``B x 3 x T x H x W`` -> ``B x T x (moments 3 cells cells)``: every frame averaged over a ``cells`` x
    ``cells`` grid, and with ``moments`` > 1 also the cell means of the pixels' squares (cubes, ...). The second
    moment is the cell's contrast: a pattern inside a cell that the plain mean averages away (a silhouette's edge
    on grey) shows in it."""
    b, c, t, h, w = video.shape
    if h % cells or w % cells:
        raise ValueError(f"frame size {h} x {w} does not divide into a {cells} x {cells} grid of cells")
    if moments < 1:
        raise ValueError(f"moments must be >= 1, got {moments}")
    x = video.float()
    powers = [x] + [x ** m for m in range(2, moments + 1)]
    blocks = [p.reshape(b, c, t, cells, h // cells, cells, w // cells).mean(dim=(4, 6)) for p in powers]
    return torch.cat([blk.transpose(1, 2).reshape(b, t, -1) for blk in blocks], dim=-1)


def motion_energy_cells(video: torch.Tensor, cell: int = 8) -> torch.Tensor:
    """``B x 3 x T x H x W`` in [0, 1] -> ``B x (T - 1) x H/cell x W/cell``: the mean absolute difference of
    consecutive grey-level frames in every ``cell`` x ``cell`` cell (differentiable). Neither colour nor a still
    shape is in it: only where, and how strongly, the picture changes."""
    b, _, t, h, w = video.shape
    if h % cell or w % cell:
        raise ValueError(f"frames of {h} x {w} do not divide into {cell} x {cell} cells")
    grey = video.float().mean(1)
    diff = (grey[:, 1:] - grey[:, :-1]).abs()
    return diff.reshape(b, t - 1, h // cell, cell, w // cell, cell).mean((3, 5))
