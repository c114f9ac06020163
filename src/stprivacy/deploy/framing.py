"""Bringing camera frames of any size and aspect ratio to the model's square input, and back.

Policy ``letterbox`` (default): scale the frame so its longer side is the model's size, centre it on black bars,
and after anonymization crop the bars off again, so the output keeps the input's aspect ratio at the model's
resolution (optionally scaled up by ``output_scale`` for viewing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Framing:
    size: int
    height: int
    width: int
    output_scale: int = 1

    @property
    def content(self) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the frame's content inside the square input."""
        scale = self.size / max(self.height, self.width)
        h = max(2, round(self.height * scale))
        w = max(2, round(self.width * scale))
        h, w = min(h, self.size), min(w, self.size)
        return (self.size - h) // 2, (self.size - w) // 2, h, w

    @property
    def output_shape(self) -> tuple[int, int]:
        _, _, h, w = self.content
        return h * self.output_scale, w * self.output_scale

    def to_model(self, frames: np.ndarray) -> torch.Tensor:
        """T x H x W x 3 uint8 -> 3 x T x S x S float in [0, 1], letterboxed."""
        top, left, h, w = self.content
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out = torch.zeros(len(frames), 3, self.size, self.size)
        out[:, :, top:top + h, left:left + w] = x
        return out.permute(1, 0, 2, 3)

    def from_model(self, video: torch.Tensor) -> np.ndarray:
        """3 x T x S x S float -> T x h x w x 3 uint8 of the content region (bars cropped)."""
        top, left, h, w = self.content
        x = video[:, :, top:top + h, left:left + w].permute(1, 0, 2, 3).clamp(0, 1)
        if self.output_scale > 1:
            x = F.interpolate(x, scale_factor=self.output_scale, mode="nearest")
        return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
