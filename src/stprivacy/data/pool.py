"""Fresh training clips every epoch, from videos decoded once.

Decoding is the slow part of a real-video pipeline, and decoding two random clips per video once (then training on
those two for 200 epochs) overfits. So each training video is decoded once, every ``stride``-th frame, resized so
its short side is ``train_short_side`` (a little above the crop: 128 for 112), and its frames are appended to one
uint8 file (:class:`FramePool`). Every epoch then cuts a new clip from it: a random temporal start and a random
``size x size`` crop (:class:`EpochClips`), drawn from ``(seed, draw, video)`` alone, so a resumed run and any
number of workers see the same clips, and a validation subset sees what it would have seen in the full set.

Frames are read with ``pread`` (one read per clip: a clip's frames lie one after another), so memory is one batch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stprivacy.data.disk import DiskVideos, open_store, read_exact, split_key, write_clips, write_exact


@dataclass(frozen=True)
class PooledVideo:
    """Where one decoded video lies in the pool file: its first byte, frame count and frame size."""

    offset: int
    frames: int
    height: int
    width: int

    @property
    def frame_bytes(self) -> int:
        return self.height * self.width * 3


class FramePool:
    """Decoded videos (``frames x H x W x 3`` uint8 each, sizes may differ) stored one after another in a file."""

    def __init__(self, fd: int, videos: list[PooledVideo], path: Path | None, directory: Path):
        self._fd, self.videos, self.path, self.directory = fd, videos, path, directory
        self._end = sum(v.frames * v.frame_bytes for v in videos)
        self._closer = weakref.finalize(self, os.close, fd)

    @classmethod
    def create(cls, path: str | Path | None = None, directory: str | Path | None = None) -> FramePool:
        """An empty pool: a named file (a cache: :meth:`save_index` records its videos) or an anonymous one."""
        fd, path, directory = open_store(path, directory, "stprivacy-pool-")
        return cls(fd, [], path, directory)

    @classmethod
    def open(cls, path: str | Path) -> FramePool:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        videos = [PooledVideo(*v) for v in meta["videos"]]
        pool = cls(os.open(path, os.O_RDONLY), videos, path, path.parent)
        if os.path.getsize(path) != pool._end:
            raise ValueError(f"{path}: size does not match its index (an interrupted cache write?)")
        return pool

    def append(self, frames: np.ndarray) -> int:
        """Store one decoded video (``frames x H x W x 3`` uint8); returns its position in the pool."""
        data = np.ascontiguousarray(frames, dtype=np.uint8)
        n, h, w, _ = data.shape
        write_exact(self._fd, data, self._end, self.path)
        self.videos.append(PooledVideo(self._end, n, h, w))
        self._end += data.nbytes
        return len(self.videos) - 1

    def save_index(self, extra: dict) -> None:
        """Record the videos (and ``extra``) beside a named pool; written last, so a pool with an index is whole."""
        meta = {"videos": [[v.offset, v.frames, v.height, v.width] for v in self.videos], **extra}
        self.path.with_suffix(".json").write_text(json.dumps(meta))

    def read(self, i: int, first: int, count: int) -> np.ndarray:
        """Frames ``first ... first + count - 1`` of video ``i``."""
        v = self.videos[i]
        out = np.empty((count, v.height, v.width, 3), dtype=np.uint8)
        read_exact(self._fd, out, v.offset + first * v.frame_bytes, self.path)
        return out

    @property
    def nbytes(self) -> int:
        return self._end


class EpochClips:
    """The training clips of one draw (an epoch): ``N x 1 x 3 x T x S x S`` uint8, cut on demand from a
    :class:`FramePool`. Tensor-like where training needs it (``shape``, ``len``, indexing as :class:`DiskVideos`);
    :meth:`at` gives the clips of another draw."""

    dtype = torch.uint8

    def __init__(self, pool: FramePool, num_frames: int, size: int, seed: int, draw: tuple[int, ...] = (0,),
                 index: np.ndarray | None = None):
        self.pool, self.num_frames, self.size, self.seed, self.draw = pool, num_frames, size, seed, tuple(draw)
        self.index = np.arange(len(pool.videos)) if index is None else np.asarray(index)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.index), 1, 3, self.num_frames, self.size, self.size))

    def dim(self) -> int:
        return 6

    def __len__(self) -> int:
        return len(self.index)

    def at(self, draw: tuple[int, ...]) -> EpochClips:
        return EpochClips(self.pool, self.num_frames, self.size, self.seed, draw, self.index)

    def select(self, index) -> EpochClips:
        return EpochClips(self.pool, self.num_frames, self.size, self.seed, self.draw, self.index[np.asarray(index)])

    def empty_like(self, shape: tuple[int, ...] | None = None) -> DiskVideos:
        """An anonymous file beside the pool (the output of a transform of these clips)."""
        return DiskVideos.create(shape or self.shape, directory=self.pool.directory)

    def clip(self, video: int) -> np.ndarray:
        """``3 x T x S x S``: the clip of pool video ``video`` at this draw."""
        v = self.pool.videos[video]
        rng = np.random.default_rng([self.seed, *self.draw, video])
        t = self.num_frames
        if v.frames >= t:
            frames = self.pool.read(video, int(rng.integers(0, v.frames - t + 1)), t)
        else:  # shorter than a clip: looped, as the test views are
            frames = self.pool.read(video, 0, v.frames)[np.arange(t) % v.frames]
        y = int(rng.integers(0, v.height - self.size + 1))
        x = int(rng.integers(0, v.width - self.size + 1))
        return frames[:, y:y + self.size, x:x + self.size].transpose(3, 0, 1, 2)

    def __getitem__(self, key) -> torch.Tensor:
        positions, view, scalar = split_key(key, len(self))
        if view is not None and bool(np.any(np.asarray(view) != 0)):
            raise IndexError("fresh training clips have one view per video and draw")
        videos = self.index[positions]
        out = torch.from_numpy(np.stack([self.clip(int(i)) for i in videos]))
        if view is None:
            out = out.unsqueeze(1)
        return out[0] if scalar else out


def fixed_views(videos: EpochClips, views: int, directory: str | Path | None = None) -> DiskVideos:
    """``views`` draws of every clip written out as fixed views (phase 3 trains its recognizers on a fixed set of
    anonymized clips): an anonymous file beside the pool."""
    out = DiskVideos.create((len(videos), views, *videos.shape[2:]), directory=directory or videos.pool.directory)
    for i in range(len(videos)):
        clips = torch.stack([videos.at((3, v))[i, 0] for v in range(views)])
        write_clips(out, i * views, clips)
    return out


def with_fixed_views(clips, views: int):
    """``clips`` with fixed views in place of fresh ones (a :class:`ClipSet` whose videos are not a frame pool's
    is returned as it is)."""
    if not isinstance(clips.videos, EpochClips):
        return clips
    return dataclasses.replace(clips, videos=fixed_views(clips.videos, views))
