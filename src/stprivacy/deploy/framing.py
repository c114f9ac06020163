"""Bringing camera frames of any size and aspect ratio to the model's square input, and back.

Two policies, each with ``batch`` (T x H x W x 3 uint8 frames -> B x 3 x T x S x S model input) and ``unbatch``
(model output -> T x h x w x 3 uint8 frames):

* :class:`Framing` (``letterbox``, the default): scale the frame so its longer side is the model's size, centre it
  on black bars, and after anonymization crop the bars off again, so the output keeps the input's aspect ratio at the
  model's resolution (optionally enlarged by ``output_scale`` for viewing). One model input per window.
* :class:`Tiling`: scale the frame by ``scale`` (1 = native pixels), pad it with black to whole tiles of the model's
  size, anonymize every tile (one batch per window) and put the tiles back together. The output has the scaled
  frame's size, so small people in a wide surveillance view keep their pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stprivacy.data.clips import to_float, to_uint8


def _frames_to_float(frames: np.ndarray) -> torch.Tensor:
    """T x H x W x 3 uint8 -> T x 3 x H x W float in [0, 1]."""
    return to_float(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))


def _float_to_frames(x: torch.Tensor) -> np.ndarray:
    """T x 3 x H x W float -> T x H x W x 3 uint8."""
    return to_uint8(x).permute(0, 2, 3, 1).numpy()


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
        x = F.interpolate(_frames_to_float(frames), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out = torch.zeros(len(frames), 3, self.size, self.size)
        out[:, :, top:top + h, left:left + w] = x
        return out.permute(1, 0, 2, 3)

    def from_model(self, video: torch.Tensor) -> np.ndarray:
        """3 x T x S x S float -> T x h x w x 3 uint8 of the content region (bars cropped)."""
        top, left, h, w = self.content
        x = video[:, :, top:top + h, left:left + w].permute(1, 0, 2, 3).clamp(0, 1)
        if self.output_scale > 1:
            x = F.interpolate(x, scale_factor=self.output_scale, mode="nearest")
        return _float_to_frames(x)

    def batch(self, frames: np.ndarray) -> torch.Tensor:
        return self.to_model(frames).unsqueeze(0)

    def unbatch(self, video: torch.Tensor) -> np.ndarray:
        return self.from_model(video[0])


@dataclass(frozen=True)
class Tiling:
    size: int
    height: int
    width: int
    scale: float = 1.0

    @property
    def scaled(self) -> tuple[int, int]:
        return max(1, round(self.height * self.scale)), max(1, round(self.width * self.scale))

    @property
    def grid(self) -> tuple[int, int]:
        h, w = self.scaled
        return -(-h // self.size), -(-w // self.size)

    @property
    def output_shape(self) -> tuple[int, int]:
        return self.scaled

    def batch(self, frames: np.ndarray) -> torch.Tensor:
        """T x H x W x 3 uint8 -> (rows * cols) x 3 x T x S x S tiles, row-major."""
        h, w = self.scaled
        gy, gx = self.grid
        x = _frames_to_float(frames)
        if (h, w) != (self.height, self.width):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        x = F.pad(x, (0, gx * self.size - w, 0, gy * self.size - h))
        t = x.shape[0]
        tiles = x.reshape(t, 3, gy, self.size, gx, self.size).permute(2, 4, 1, 0, 3, 5)
        return tiles.reshape(gy * gx, 3, t, self.size, self.size)

    def unbatch(self, video: torch.Tensor) -> np.ndarray:
        h, w = self.scaled
        gy, gx = self.grid
        t = video.shape[2]
        x = video.reshape(gy, gx, 3, t, self.size, self.size).permute(3, 2, 0, 4, 1, 5)
        return _float_to_frames(x.reshape(t, 3, gy * self.size, gx * self.size)[:, :, :h, :w])
