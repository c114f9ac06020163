"""Clip tensors on disk: :class:`DiskVideos` holds ``N x V x 3 x T x H x W`` uint8 videos in a file and reads them
back batch by batch, so a split of any size costs the memory of one batch.

Reads and writes go through ``pread`` / ``pwrite`` on the file, not through a memory mapping: mapped pages would
count in the process's resident memory until the kernel evicts them, and the point is a resident size set by the
batch, not the dataset (``benchmarks/phase3_memory.py`` measures it). The page cache still makes repeated reads
fast. A file is either *named* (a cache, or views kept for inspection; a ``.json`` beside it records the shape) or
*anonymous* (unlinked as soon as it is opened: the space returns when the last reference goes, even after a crash).

Indexing returns ordinary tensors: ``videos[i]``, ``videos[a:b]``, ``videos[index_tensor]`` (every view),
``videos[index_tensor, views_tensor]`` (one view per video, as training batches take), ``videos[a:b, v]``.
"""

from __future__ import annotations

import json
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch


def open_store(path: str | Path | None, directory: str | Path | None, prefix: str) -> tuple[int, Path | None, Path]:
    """A file to write: named at ``path`` (truncated), or anonymous in ``directory`` (default ``TMPDIR``),
    unlinked at once so its space returns with the last descriptor. Returns (fd, path or None, its folder)."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644), path, path.parent
    directory = Path(directory or tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".u8", dir=directory)
    os.unlink(name)
    return fd, None, directory


def read_exact(fd: int, buf: np.ndarray, offset: int, what: Path | None) -> None:
    """Fill ``buf`` from ``fd`` at ``offset``, or fail loudly (a truncated file)."""
    if os.preadv(fd, [memoryview(buf).cast("B")], offset) != buf.nbytes:
        raise OSError(f"short read from {what or 'an anonymous file'}")


def write_exact(fd: int, data: np.ndarray, offset: int, what: Path | None) -> None:
    if os.pwrite(fd, memoryview(data).cast("B"), offset) != data.nbytes:
        raise OSError(f"short write to {what or 'an anonymous file'} (disk full?)")


def split_key(key, length: int) -> tuple[np.ndarray, object, bool]:
    """A tensor-style index ``videos[first]`` or ``videos[first, view]`` as (video positions, view or None, whether
    ``first`` was a scalar)."""
    first, view = key if isinstance(key, tuple) else (key, None)
    first = first.numpy() if isinstance(first, torch.Tensor) else first
    view = view.numpy() if isinstance(view, torch.Tensor) else view
    return np.atleast_1d(np.arange(length)[first]), view, isinstance(first, (int, np.integer))


class DiskVideos:
    """``N x V x 3 x T x H x W`` uint8 videos in a file, optionally seen through a subset ``index`` of its videos."""

    def __init__(self, fd: int, shape: tuple[int, ...], path: Path | None, directory: Path,
                 index: np.ndarray | None = None):
        self._fd, self.path, self.directory = fd, path, directory
        self._stored = tuple(shape)
        self._index = np.arange(shape[0]) if index is None else index
        self._clip_bytes = int(np.prod(shape[2:]))

    # -- creation ---------------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, shape: tuple[int, ...], path: str | Path | None = None,
               directory: str | Path | None = None) -> DiskVideos:
        """A zero-filled file for ``shape``: named at ``path``, or anonymous in ``directory`` (default: the system
        temporary folder, ``TMPDIR``)."""
        if len(shape) != 6 or shape[2] != 3:
            raise ValueError(f"videos must be N x V x 3 x T x H x W, got {tuple(shape)}")
        fd, path, directory = open_store(path, directory, "stprivacy-views-")
        if path is not None:
            path.with_suffix(".json").write_text(json.dumps({"shape": list(shape), "dtype": "uint8"}))
        os.ftruncate(fd, int(np.prod(shape)))
        return cls._owned(fd, shape, path, directory)

    @classmethod
    def open(cls, path: str | Path) -> DiskVideos:
        """A named file written by :meth:`create` (read-only)."""
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        shape = tuple(meta["shape"])
        if os.path.getsize(path) != int(np.prod(shape)):
            raise ValueError(f"{path}: size does not match the recorded shape {shape}")
        return cls._owned(os.open(path, os.O_RDONLY), shape, path, path.parent)

    @classmethod
    def _owned(cls, fd, shape, path, directory) -> DiskVideos:
        videos = cls(fd, shape, path, directory)
        videos._closer = weakref.finalize(videos, os.close, fd)
        return videos

    def empty_like(self, shape: tuple[int, ...] | None = None) -> DiskVideos:
        """An anonymous file beside this one (the output of a transform of these videos)."""
        return DiskVideos.create(shape or self.shape, directory=self.directory)

    # -- tensor-like surface ----------------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self._index), *self._stored[1:]))

    dtype = torch.uint8

    def dim(self) -> int:
        return 6

    def __len__(self) -> int:
        return len(self._index)

    def select(self, index: torch.Tensor) -> DiskVideos:
        """The videos at ``index``, still on disk (a view sharing the file)."""
        view = DiskVideos(self._fd, self._stored, self.path, self.directory, self._index[np.asarray(index)])
        view._owner = self  # the file stays open while a view of it lives
        return view

    def __getitem__(self, key) -> torch.Tensor:
        positions, view, scalar = split_key(key, len(self))
        videos = self._index[positions]
        v = self._stored[1]
        if view is None:
            out = np.empty((len(videos), *self._stored[1:]), dtype=np.uint8)
            for k, i in enumerate(videos):
                self._read(out[k], int(i) * v)
        else:
            views = np.broadcast_to(np.asarray(view), (len(videos),))
            out = np.empty((len(videos), *self._stored[2:]), dtype=np.uint8)
            for k, (i, j) in enumerate(zip(videos, views, strict=True)):
                self._read(out[k], int(i) * v + int(j))
        tensor = torch.from_numpy(out)
        return tensor[0] if scalar else tensor

    def write(self, first_clip: int, clips: torch.Tensor) -> None:
        """Write ``clips`` (n x 3 x T x H x W uint8) as the flat clips ``first_clip ...`` (video-major, view-minor)
        of the stored file."""
        data = np.ascontiguousarray(clips.numpy(), dtype=np.uint8)
        write_exact(self._fd, data, first_clip * self._clip_bytes, self.path)

    def _read(self, buf: np.ndarray, clip: int) -> None:
        read_exact(self._fd, buf, clip * self._clip_bytes, self.path)

    def __repr__(self) -> str:
        where = self.path or f"anonymous file in {self.directory}"
        return f"DiskVideos({tuple(self.shape)}, {where})"


def new_videos_like(videos, shape: tuple[int, ...] | None = None):
    """Storage for the transform of ``videos``: in memory beside in-memory videos, on disk beside disk videos."""
    if isinstance(videos, torch.Tensor):
        return torch.empty(shape or videos.shape, dtype=torch.uint8)
    return videos.empty_like(shape)


def write_clips(out, first_clip: int, clips: torch.Tensor) -> None:
    """Write ``clips`` (flat, n x 3 x T x H x W) at flat clip ``first_clip`` of ``out`` (a tensor or a file)."""
    if isinstance(out, torch.Tensor):
        out.view(-1, *out.shape[2:])[first_clip:first_clip + len(clips)] = clips
    else:
        out.write(first_clip, clips)


def flat_clips(videos, start: int, stop: int) -> torch.Tensor:
    """Flat clips ``start:stop`` (video-major, view-minor) of ``N x V x ...`` videos, as a tensor."""
    v = videos.shape[1]
    if isinstance(videos, torch.Tensor):
        return videos.flatten(0, 1)[start:stop]
    first, last = start // v, -(-stop // v)
    block = videos[first:last].flatten(0, 1)
    return block[start - first * v: stop - first * v]
