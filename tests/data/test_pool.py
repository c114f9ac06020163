"""Fresh training clips: new every draw, the same for the same draw, whatever the subset or the worker count."""

import dataclasses

import numpy as np
import pytest
import torch

from stprivacy.data.clips import ClipSet
from stprivacy.data.pool import EpochClips, FramePool, fixed_views, with_fixed_views
from stprivacy.training.batches import epoch_batches


def _pool(tmp_path, n=6, frames=(12, 20, 5, 9, 30, 16), size=(10, 13)):
    pool = FramePool.create(directory=tmp_path)
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = size if i % 2 else size[::-1]
        pool.append(rng.integers(0, 256, (frames[i], h, w, 3), dtype=np.uint8))
    return pool


def test_clips_change_with_the_draw_and_repeat_for_the_same_draw(tmp_path):
    clips = EpochClips(_pool(tmp_path), num_frames=4, size=8, seed=1)
    first, again, other = clips.at((1, 0))[:], clips.at((1, 0))[:], clips.at((1, 1))[:]
    assert first.shape == (6, 1, 3, 4, 8, 8) and first.dtype == torch.uint8
    assert torch.equal(first, again)
    differ = [not torch.equal(first[i], other[i]) for i in range(6)]
    assert sum(differ) >= 5  # a new start or crop for (nearly) every video


def test_a_clip_is_a_crop_of_consecutive_pooled_frames(tmp_path):
    pool = _pool(tmp_path)
    clips = EpochClips(pool, num_frames=4, size=8, seed=0)
    video = pool.read(1, 0, pool.videos[1].frames)  # 20 x 10 x 13 x 3
    clip = clips[1, 0].permute(1, 2, 3, 0).numpy()  # T x S x S x 3
    hits = [(s, y, x) for s in range(17) for y in range(3) for x in range(6)
            if np.array_equal(video[s:s + 4, y:y + 8, x:x + 8], clip)]
    assert len(hits) == 1
    short = EpochClips(pool, num_frames=8, size=8, seed=0)[2, 0].permute(1, 2, 3, 0).numpy()  # 5 frames, looped
    assert short.shape == (8, 8, 8, 3) and np.array_equal(short[5:], short[:3])


def test_a_subset_sees_what_the_full_set_sees(tmp_path):
    clips = EpochClips(_pool(tmp_path), num_frames=4, size=8, seed=2).at((2, 3))
    sub = clips.select(np.array([4, 1]))
    assert torch.equal(sub[:], clips[torch.tensor([4, 1])])


def test_epoch_batches_draw_new_clips_per_epoch(tmp_path):
    videos = EpochClips(_pool(tmp_path), num_frames=4, size=8, seed=0)
    clips = ClipSet(videos, torch.arange(6) % 2, torch.zeros(6, 3, dtype=torch.long))

    def epoch(draw):
        with epoch_batches(clips, 6, generator=torch.Generator().manual_seed(0), hflip=False,
                           device=torch.device("cpu"), desc="", progress=False, draw=draw) as bar:
            return next(iter(bar))["video"]

    assert torch.equal(epoch((1, 0)), epoch((1, 0)))  # a resumed epoch sees its clips
    assert not torch.equal(epoch((1, 0)), epoch((1, 1)))


def test_fixed_views_are_written_once_for_phase_3(tmp_path):
    videos = EpochClips(_pool(tmp_path), num_frames=4, size=8, seed=0)
    fixed = fixed_views(videos, 2)
    assert fixed.shape == (6, 2, 3, 4, 8, 8)
    assert torch.equal(fixed[3, 1], videos.at((3, 1))[3, 0])
    clips = ClipSet(videos, torch.arange(6), torch.zeros(6, 3, dtype=torch.long))
    assert with_fixed_views(clips, 2).views == 2
    plain = dataclasses.replace(clips, videos=torch.zeros(6, 1, 3, 4, 8, 8, dtype=torch.uint8))
    assert with_fixed_views(plain, 2) is plain


def test_pool_index_round_trip_and_a_truncated_pool_is_refused(tmp_path):
    pool = FramePool.create(tmp_path / "pool.u8")
    pool.append(np.zeros((3, 8, 9, 3), np.uint8))
    pool.append(np.full((2, 9, 8, 3), 7, np.uint8))
    pool.save_index({"kept": [0, 1]})
    again = FramePool.open(tmp_path / "pool.u8")
    assert [v.frames for v in again.videos] == [3, 2] and (again.read(1, 0, 2) == 7).all()
    with open(tmp_path / "pool.u8", "r+b") as f:
        f.truncate(10)
    with pytest.raises(ValueError, match="interrupted"):
        FramePool.open(tmp_path / "pool.u8")
