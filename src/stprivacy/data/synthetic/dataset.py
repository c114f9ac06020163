"""Rendering synthetic splits into memory (in parallel) and writing them to disk as mp4 + manifest CSV."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from stprivacy.data.clips import ClipSet
from stprivacy.data.synthetic.config import ACTIONS, ATTRIBUTES, SynthConfig
from stprivacy.data.synthetic.render import clip_labels, render_clip

log = logging.getLogger(__name__)

#: Seed offsets that keep the training and test clips of one seed disjoint.
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


def _render_range(args: tuple[SynthConfig, int, int, int, int]):
    cfg, seed, stream, start, stop = args
    clips = [render_clip((seed, stream, i), cfg) for i in range(start, stop)]
    return (
        np.stack([c.frames for c in clips]),
        np.array([c.action for c in clips]),
        np.stack([c.attributes for c in clips]),
        np.stack([c.person_mask for c in clips]),
        np.stack([c.actor_mask for c in clips]),
    )


def _render_chunks(fn, cfg: SynthConfig, seed: int, split: str, size: int, workers: int, desc: str,
                   progress: bool) -> list:
    """``fn`` over clips 0 .. ``size`` - 1 of ``split`` in chunks of 250 (in ``workers`` processes when more than
    one), behind a progress bar; the chunks' results in order."""
    stream = SPLIT_STREAMS[split]
    chunk = 250
    jobs = [(cfg, seed, stream, s, min(s + chunk, size)) for s in range(0, size, chunk)]
    parts = []
    with tqdm(total=size, desc=desc, unit="clip", disable=not progress, leave=False) as bar:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for job, part in zip(jobs, pool.map(fn, jobs), strict=True):
                    parts.append(part)
                    bar.update(job[4] - job[3])
        else:
            for job in jobs:
                parts.append(fn(job))
                bar.update(job[4] - job[3])
    return parts


def render_split(cfg: SynthConfig, size: int, seed: int, split: str = "train", workers: int = 2,
                 progress: bool = True) -> ClipSet:
    """Render ``size`` clips of ``split``; clip ``i`` depends only on (seed, split, i, cfg)."""
    if size < 1:
        raise ValueError(f"a split needs at least one clip, got size={size}")
    parts = _render_chunks(_render_range, cfg, seed, split, size, workers, f"render {split}", progress)
    frames, actions, attrs, masks, actor = (np.concatenate(p) for p in zip(*parts, strict=True))
    videos = torch.from_numpy(frames).permute(0, 4, 1, 2, 3).contiguous()  # N x 3 x T x H x W
    return ClipSet(videos, torch.from_numpy(actions), torch.from_numpy(attrs), ACTIONS, ATTRIBUTES,
                   person_masks=torch.from_numpy(masks), actor_masks=torch.from_numpy(actor))


def write_split(clips: ClipSet, out_dir: Path, split: str, fps: float = 8.0) -> Path:
    """Write clips as H.264 mp4 files plus ``<split>.csv`` in the generic manifest format; returns the CSV path."""
    from stprivacy.data.manifest import write_manifest
    from stprivacy.data.video_io import write_video

    out_dir = Path(out_dir)
    (out_dir / split).mkdir(parents=True, exist_ok=True)
    rows = []
    for i in tqdm(range(len(clips)), desc=f"write {split}", unit="clip", leave=False):
        rel = f"{split}/{i:06d}_{ACTIONS[int(clips.actions[i])]}.mp4"
        write_video(out_dir / rel, clips.videos[i, 0].permute(1, 2, 3, 0).numpy(), fps=fps)
        rows.append((rel, ACTIONS[int(clips.actions[i])], clips.attributes[i].tolist()))
    return write_manifest(out_dir / f"{split}.csv", rows, ATTRIBUTES)


def _render_twins(args: tuple[SynthConfig, int, int, int, int]) -> np.ndarray:
    cfg, seed, stream, start, stop = args
    twins = []
    for i in range(start, stop):
        _, labels = clip_labels((seed, stream, i), cfg)
        twins.append(render_clip((seed, stream, i), cfg, attributes=1 - labels).frames)
    return np.stack(twins)


def with_twins(clips: ClipSet, cfg: SynthConfig, seed: int, split: str = "train", workers: int = 2,
               progress: bool = True) -> ClipSet:
    """``clips`` (the ``split`` rendered by :func:`render_split`, every clip in order) with each clip's *twin*:
    the same clip rendered again with every private attribute flipped. The renderer draws labels, scene, look and
    motion from separate streams, so a twin has the same action, motion, scene and clothes, and the other skin
    tone, face, gender, nudity and bystander. This is privileged supervision that only a renderer has (the
    ``train.twin_invariance`` oracle), never available on real video."""
    parts = _render_chunks(_render_twins, cfg, seed, split, len(clips), workers, f"render {split} twins", progress)
    twins = torch.from_numpy(np.concatenate(parts)).permute(0, 4, 1, 2, 3).contiguous()
    if twins.shape != clips.videos[:, 0].shape:
        raise ValueError(f"twins {tuple(twins.shape)} do not match the clips {tuple(clips.videos[:, 0].shape)}")
    return dataclasses.replace(clips, twins=twins)
