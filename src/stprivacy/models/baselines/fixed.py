"""The non-learned baselines (METHOD.md section 7).

Each one maps a :class:`ClipSet` of uint8 videos to one of the same shape, view by view:

* ``raw``: the unmodified video;
* ``downsample2x`` / ``downsample4x``: every frame reduced by k (mean of each k x k block) and enlarged back by
  repeating pixels (pixelation);
* ``blur_weak`` / ``blur_strong``: Gaussian blur of each frame with sigma 1.5 % / 4 % of the frame size (about 1
  and 2.6 pixels at 64 x 64, 1.7 and 4.5 at 112 x 112), reflect padding, kernel radius 3 sigma;
* ``blackening``: pixels of the person mask set to black (needs the mask: the synthetic renderer provides it; real
  datasets need a mask source and otherwise get a clear error);
* ``frame_difference``: each frame replaced by the absolute difference of consecutive grey-level frames (times
  ``DIFFERENCE_GAIN``, the first frame repeating the second's difference), in all three channels: motion and
  nothing still. The diagnostic of what an output that shows the action's motion faithfully gives away.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from stprivacy.data.clips import ClipSet
from stprivacy.data.disk import new_videos_like, write_clips
from stprivacy.errors import ConfigError

BLUR_SIGMA = {"blur_weak": 0.015, "blur_strong": 0.04}
#: ``frame_difference``'s gain: a moving edge of contrast 1/4 or more saturates to white.
DIFFERENCE_GAIN = 4.0


#: Videos transformed per chunk: the float copy of a chunk stays small (about 100 MB at 8 x 64 x 64, one view),
#: where converting a whole dataset at once would take 4x its uint8 size and run slower for it.
CHUNK_VIDEOS = 256


def map_frames(videos: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn`` (B x 3 x H x W float in [0, 255] -> same) applied to every frame of ``N x V x 3 x T x H x W`` uint8
    videos, a chunk of videos at a time; the result is rounded back to uint8."""
    out = new_videos_like(videos)  # on disk beside disk videos: a split of any size in bounded memory
    h, w = videos.shape[-2:]
    for start in range(0, len(videos), CHUNK_VIDEOS):
        chunk = videos[start:start + CHUNK_VIDEOS]
        frames = chunk.movedim(3, 2).reshape(-1, 3, h, w).float()  # (n v t) x 3 x H x W
        result = fn(frames).round_().clamp_(0, 255).to(torch.uint8)
        write_clips(out, start * videos.shape[1], result.reshape(chunk.movedim(3, 2).shape).movedim(2, 3).flatten(0, 1))
    return out


def pixelate(frames: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each k x k block, repeated over the block (frames: B x C x H x W, H and W divisible by k)."""
    b, c, h, w = frames.shape
    if h % k or w % k:
        raise ConfigError(f"downsampling by {k} needs frame sizes divisible by {k}, got {h}x{w}")
    means = F.avg_pool2d(frames, k)
    # Repeating by broadcasting: 6x faster on a CPU than F.interpolate(mode="nearest"), the same values.
    return means[:, :, :, None, :, None].expand(b, c, h // k, k, w // k, k).reshape(b, c, h, w)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """``n x n`` matrix of a 1-D Gaussian blur with reflect padding: ``blur(x) = M @ x`` along one axis.
    Row ``i`` holds the kernel centred on ``i``; taps that fall outside are reflected back (-1 -> 1, n -> n - 2)."""
    k = gaussian_kernel(sigma)
    r = (len(k) - 1) // 2
    if r >= n:
        raise ConfigError(f"a blur of sigma {sigma:.2f} (radius {r}) needs frames larger than {n} pixels")
    taps = torch.arange(n)[:, None] + torch.arange(-r, r + 1)[None, :]
    taps = torch.where(taps < 0, -taps, taps)
    taps = torch.where(taps > n - 1, 2 * (n - 1) - taps, taps)
    return torch.zeros(n, n).scatter_add_(1, taps, k.expand(n, -1).contiguous())


def gaussian_blur(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (frames: B x C x H x W float), as two matrix products: 8x
    faster on a CPU than two depthwise 1-D convolutions, the same sums."""
    h, w = frames.shape[-2:]
    rows, cols = blur_matrix(h, sigma).to(frames), blur_matrix(w, sigma).to(frames)
    return rows @ frames @ cols.T


def _with_videos(clips: ClipSet, videos: torch.Tensor) -> ClipSet:
    return ClipSet(videos, clips.actions, clips.attributes, clips.action_names, clips.attribute_names,
                   person_masks=clips.person_masks, actor_masks=clips.actor_masks, names=clips.names)


def _pixelation(k: int) -> Callable[[ClipSet], ClipSet]:
    def apply(clips: ClipSet) -> ClipSet:
        return _with_videos(clips, map_frames(clips.videos, lambda frames: pixelate(frames, k)))

    return apply


def _blur(name: str) -> Callable[[ClipSet], ClipSet]:
    def apply(clips: ClipSet) -> ClipSet:
        sigma = BLUR_SIGMA[name] * max(clips.videos.shape[-2:])
        return _with_videos(clips, map_frames(clips.videos, lambda frames: gaussian_blur(frames, sigma)))

    return apply


def blacken(clips: ClipSet) -> ClipSet:
    if clips.person_masks is None:
        raise ConfigError("the blackening baseline needs person masks; this dataset has none (the synthetic "
                          "benchmark renders them; for real data provide a mask source or drop 'blackening')")
    person = clips.person_masks.unsqueeze(2) > 127  # N x V x 1 x T x H x W
    return _with_videos(clips, clips.videos.masked_fill(person, 0))


def frame_difference(clips: ClipSet) -> ClipSet:
    videos = clips.videos
    if videos.shape[3] < 2:
        raise ConfigError("the frame_difference baseline needs clips of at least two frames")
    out = new_videos_like(videos)
    for start in range(0, len(videos), CHUNK_VIDEOS):
        grey = videos[start:start + CHUNK_VIDEOS].float().mean(2, keepdim=True)  # n x V x 1 x T x H x W
        diff = (grey[:, :, :, 1:] - grey[:, :, :, :-1]).abs()
        diff = torch.cat([diff[:, :, :, :1], diff], dim=3) * DIFFERENCE_GAIN
        result = diff.round_().clamp_(0, 255).to(torch.uint8).expand(-1, -1, 3, -1, -1, -1)
        write_clips(out, start * videos.shape[1], result.flatten(0, 1))
    return _with_videos(clips, out)


FIXED_BASELINES: dict[str, Callable[[ClipSet], ClipSet]] = {
    "raw": lambda clips: clips,
    "downsample2x": _pixelation(2),
    "downsample4x": _pixelation(4),
    "blur_weak": _blur("blur_weak"),
    "blur_strong": _blur("blur_strong"),
    "blackening": blacken,
    "frame_difference": frame_difference,
}
