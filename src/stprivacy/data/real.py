"""Real video datasets on disk (HMDB51, UCF101, PA-HMDB51, manifests) decoded into :class:`ClipSet` views.

Training videos are decoded once into a frame pool that cuts a fresh random clip and crop from each video every
epoch (:mod:`stprivacy.data.pool`; or, with ``fresh_clips`` off, ``train_views`` fixed random clips); test
videos become ``test_clips x test_crops`` views (5 x 3 in the protocol), all resized so the short side is
``size``. Everything decoded goes to disk as it is produced (:mod:`stprivacy.data.disk`), so memory does not grow
with the dataset; with ``cache_dir`` that file is a cache the next run reuses. Unreadable videos are skipped,
counted and listed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from stprivacy.data.clips import ClipSet
from stprivacy.data.disk import DiskVideos, write_clips
from stprivacy.data.pool import EpochClips, FramePool
from stprivacy.data.sampling import ClipSampling
from stprivacy.data.splits import Split
from stprivacy.data.video_io import (
    clip_indices,
    random_clip_start,
    read_video,
    resize_short_side,
    spatial_crops,
    uniform_clip_starts,
)
from stprivacy.data.vp_labels import LabelTable, video_key
from stprivacy.errors import VideoReadError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".webm", ".mkv", ".mov")


@dataclass
class VideoEntry:
    path: Path
    action: int
    attributes: np.ndarray
    key: str


@dataclass
class DatasetReport:
    """What ``stprivacy data check`` prints: which videos were found, and which were not usable."""

    found: int = 0
    missing: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"found {self.found}, missing {len(self.missing)}, unlabelled {len(self.unlabelled)}, "
                 f"unreadable {len(self.unreadable)}"]
        for name, items in (("missing", self.missing), ("unlabelled", self.unlabelled),
                            ("unreadable", self.unreadable)):
            for item in items[:10]:
                lines.append(f"  {name}: {item}")
            if len(items) > 10:
                lines.append(f"  ... and {len(items) - 10} more {name}")
        return "\n".join(lines)


def locate(root: Path, class_dir: str, filename: str) -> Path | None:
    """``root/class/filename``, or the same stem with another video extension."""
    path = root / class_dir / filename
    if path.is_file():
        return path
    for ext in VIDEO_EXTENSIONS:
        alt = path.with_suffix(ext)
        if alt.is_file():
            return alt
    return None


def match_split(root: str | Path, videos: list[tuple[str, str]], classes: list[str], labels: LabelTable,
                report: DatasetReport) -> list[VideoEntry]:
    """Pair each (class, file) of a split with its file on disk and its privacy label."""
    root = Path(root)
    index = {c: i for i, c in enumerate(classes)}
    entries = []
    for cls, filename in videos:
        key = video_key(cls, filename)
        if key not in labels:
            report.unlabelled.append(key)
            continue
        path = locate(root, cls, filename)
        if path is None:
            report.missing.append(f"{cls}/{filename}")
            continue
        entries.append(VideoEntry(path, index[cls], labels.row(key), key))
    report.found += len(entries)
    return entries


def split_entries(root, split: Split, labels: LabelTable) -> tuple[list[VideoEntry], list[VideoEntry], DatasetReport]:
    report = DatasetReport()
    train = match_split(root, split.train, split.classes, labels, report)
    test = match_split(root, split.test, split.classes, labels, report)
    return train, test, report


def _views_of(frames: np.ndarray, sampling: ClipSampling, train: bool, rng: np.random.Generator) -> np.ndarray:
    """V x T x S x S x 3 fixed views of one decoded video (test views; training views when clips are not fresh)."""
    n, t, s = len(frames), sampling.num_frames, sampling.stride
    views = []
    if train:
        for _ in range(sampling.train_views):
            clip = resize_short_side(frames[clip_indices(n, t, s, random_clip_start(n, t, s, rng))], sampling.size)
            h, w = clip.shape[1:3]
            y, x = rng.integers(0, h - sampling.size + 1), rng.integers(0, w - sampling.size + 1)
            views.append(clip[:, y:y + sampling.size, x:x + sampling.size])
    else:
        for start in uniform_clip_starts(n, t, s, sampling.test_clips):
            clip = resize_short_side(frames[clip_indices(n, t, s, start)], sampling.size)
            views.extend(spatial_crops(clip, sampling.size, sampling.test_crops))
    return np.stack(views)


def _decode(job) -> np.ndarray | str:
    """One video's fixed views (or, for a frame pool, its frames at the stride and pool size), or the reason it
    could not be read (runs in a worker process)."""
    path, sampling, train, seed, index, pooled = job
    try:
        frames, _ = read_video(path)
    except VideoReadError as exc:
        return str(exc)
    if pooled:
        return resize_short_side(frames[::sampling.stride], sampling.pool_side())
    return _views_of(frames, sampling, train, np.random.default_rng([seed, index]))


#: Fewer videos than this are decoded in-process: starting worker processes takes seconds.
MIN_VIDEOS_FOR_WORKERS = 64


def _map(fn, jobs: list, workers: int):
    """``map`` in order, over ``workers`` processes when there are several and enough jobs."""
    if workers <= 1 or len(jobs) < MIN_VIDEOS_FOR_WORKERS:
        yield from map(fn, jobs)
        return
    # spawned, not forked: FFmpeg's threads in the parent do not survive a fork (workers crashed in tests)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(fn, jobs, chunksize=1)


def _cache_file(cache_dir: Path, entries: list[VideoEntry], sampling: ClipSampling, train: bool, seed: int) -> Path:
    kind = "pool" if train and sampling.fresh_clips else "train" if train else "test"
    key = [[str(e.path) for e in entries], asdict(sampling), train, seed if kind != "pool" else None]
    h = hashlib.sha256(json.dumps(key).encode())
    return cache_dir / f"clips-{kind}-{h.hexdigest()[:16]}.u8"


def decode_clipset(entries: list[VideoEntry], sampling: ClipSampling, *, train: bool, action_names, attribute_names,
                   seed: int = 0, cache_dir: str | Path | None = None, progress: bool = True,
                   report: DatasetReport | None = None, workers: int = 1,
                   scratch_dir: str | Path | None = None) -> ClipSet:
    """Decode ``entries`` into a :class:`ClipSet` with ``workers`` processes; unreadable videos are skipped and
    listed in ``report``. Each video's random views come from its own seeded generator, so the result does not
    depend on the number of workers.

    Decoded clips go to disk as they are produced, never all into memory: into the cache (``cache_dir``, reused
    by the next run with the same videos and sampling) or an anonymous file in ``scratch_dir`` (default the
    system's temporary folder). Training videos with ``sampling.fresh_clips`` become a frame pool that gives new
    clips every epoch (:mod:`stprivacy.data.pool`); test videos become the protocol's fixed views."""
    if not entries:
        raise VideoReadError("no video to decode")
    pooled = train and sampling.fresh_clips
    cache = _cache_file(Path(cache_dir), entries, sampling, train, seed) if cache_dir else None
    if cache is not None and cache.is_file() and cache.with_suffix(".json").is_file():
        videos, keep = _open_cached(cache, pooled)
        log.info("decoded clips from cache %s", cache)
    else:
        videos, keep = _decode_to_disk(entries, sampling, train, seed, pooled, cache, scratch_dir, workers,
                                       progress, report)
    if pooled:
        videos = EpochClips(videos, sampling.num_frames, sampling.size, seed)
    kept = [entries[i] for i in keep]
    return ClipSet(
        videos,
        torch.tensor([e.action for e in kept]),
        torch.from_numpy(np.stack([e.attributes for e in kept])),
        tuple(action_names), tuple(attribute_names),
        names=[e.key for e in kept],
    )


def _open_cached(cache: Path, pooled: bool):
    meta = json.loads(cache.with_suffix(".json").read_text())
    return (FramePool.open(cache) if pooled else DiskVideos.open(cache)), meta["kept"]


def _decode_to_disk(entries, sampling, train, seed, pooled, cache, scratch_dir, workers, progress, report):
    """Decode every entry straight into a file (the cache, or an anonymous scratch file)."""
    if pooled:
        store = FramePool.create(cache, directory=scratch_dir)
    else:
        views = sampling.train_views if train else sampling.test_clips * sampling.test_crops
        shape = (len(entries), views, 3, sampling.num_frames, sampling.size, sampling.size)
        partial = cache.with_name(cache.stem + ".partial.u8") if cache else None
        store = DiskVideos.create(shape, partial, directory=scratch_dir)
    keep = []
    jobs = [(e.path, sampling, train, seed, i, pooled) for i, e in enumerate(entries)]
    for i, result in enumerate(tqdm(_map(_decode, jobs, workers), total=len(jobs),
                                    desc=f"decode {'train' if train else 'test'}", unit="video",
                                    disable=not progress, leave=False)):
        if isinstance(result, str):
            log.warning("skipping unreadable video: %s", result)
            if report is not None:
                report.unreadable.append(str(entries[i].path))
            continue
        if pooled:
            store.append(result)
        else:
            write_clips(store, len(keep) * store.shape[1], torch.from_numpy(result).permute(0, 4, 1, 2, 3))
        keep.append(i)
    if not keep:
        raise VideoReadError("none of the videos could be decoded")
    if pooled:
        if cache is not None:
            store.save_index({"kept": keep})
        return store, keep
    if cache is not None:  # written whole, then moved into place with its shape: a cache is never half-written
        store = _finish_cache(store, cache, keep)
    return (store if len(keep) == len(entries) else store.select(torch.arange(len(keep)))), keep


def _finish_cache(store: DiskVideos, cache: Path, keep: list[int]) -> DiskVideos:
    n = len(keep)
    os.truncate(store.path, n * int(np.prod(store.shape[1:])))
    store.path.replace(cache)
    store.path.with_suffix(".json").unlink()
    cache.with_suffix(".json").write_text(json.dumps({"shape": [n, *store.shape[1:]], "dtype": "uint8",
                                                      "kept": keep}))
    return DiskVideos.open(cache)
