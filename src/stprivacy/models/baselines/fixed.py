"""The non-learned baselines (METHOD.md section 7).

Each one maps a :class:`ClipSet` of uint8 videos to one of the same shape, view by view:

* ``raw``: the unmodified video;
* ``downsample2x`` / ``downsample4x``: every frame reduced by k (mean of each k x k block) and enlarged back by
  repeating pixels (pixelation);
* ``blur_weak`` / ``blur_strong``: Gaussian blur of each frame with sigma 1.5 % / 4 % of the frame size (about 1
  and 2.6 pixels at 64 x 64, 1.7 and 4.5 at 112 x 112), reflect padding, kernel radius 3 sigma;
* ``blackening``: pixels of the person mask set to black (needs the mask: the synthetic renderer provides it; real
  datasets need a mask source and otherwise get a clear error).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from stprivacy.data.clips import ClipSet
from stprivacy.errors import ConfigError

BLUR_SIGMA = {"blur_weak": 0.015, "blur_strong": 0.04}


def _frames(video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """N x V x 3 x T x H x W uint8 -> (N*V*T) x 3 x H x W float, and the original shape."""
    shape = tuple(video.shape)
    x = video.float().movedim(3, 2).reshape(-1, 3, shape[-2], shape[-1])
    return x, shape


def _back(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    n, v, c, t, h, w = shape
    return x.round().clamp(0, 255).to(torch.uint8).reshape(n, v, t, c, h, w).movedim(2, 3).contiguous()


def pixelate(frames: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each k x k block, repeated over the block (frames: B x C x H x W, H and W divisible by k)."""
    h, w = frames.shape[-2:]
    if h % k or w % k:
        raise ConfigError(f"downsampling by {k} needs frame sizes divisible by {k}, got {h}x{w}")
    return F.interpolate(F.avg_pool2d(frames, k), scale_factor=k, mode="nearest")


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (frames: B x C x H x W float)."""
    k = gaussian_kernel(sigma).to(frames)
    r = (len(k) - 1) // 2
    c = frames.shape[1]
    x = F.pad(frames, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _with_videos(clips: ClipSet, videos: torch.Tensor) -> ClipSet:
    return ClipSet(videos, clips.actions, clips.attributes, clips.action_names, clips.attribute_names,
                   clips.person_masks, None, clips.names)


def _pixelation(k: int) -> Callable[[ClipSet], ClipSet]:
    def apply(clips: ClipSet) -> ClipSet:
        x, shape = _frames(clips.videos)
        return _with_videos(clips, _back(pixelate(x, k), shape))

    return apply


def _blur(name: str) -> Callable[[ClipSet], ClipSet]:
    def apply(clips: ClipSet) -> ClipSet:
        x, shape = _frames(clips.videos)
        sigma = BLUR_SIGMA[name] * max(shape[-2:])
        out = torch.cat([gaussian_blur(chunk, sigma) for chunk in x.split(4096)])
        return _with_videos(clips, _back(out, shape))

    return apply


def blacken(clips: ClipSet) -> ClipSet:
    if clips.person_masks is None:
        raise ConfigError("the blackening baseline needs person masks; this dataset has none (the synthetic "
                          "benchmark renders them; for real data provide a mask source or drop 'blackening')")
    person = clips.person_masks.unsqueeze(2) > 127  # N x V x 1 x T x H x W
    return _with_videos(clips, clips.videos.masked_fill(person, 0))


FIXED_BASELINES: dict[str, Callable[[ClipSet], ClipSet]] = {
    "raw": lambda clips: clips,
    "downsample2x": _pixelation(2),
    "downsample4x": _pixelation(4),
    "blur_weak": _blur("blur_weak"),
    "blur_strong": _blur("blur_strong"),
    "blackening": blacken,
}
