"""Videos on disk: what goes in comes out, through every indexing form training and phase 3 use."""

import os

import pytest
import torch

from stprivacy.data.clips import ClipSet
from stprivacy.data.disk import DiskVideos, flat_clips, new_videos_like, write_clips


def _filled(tmp_path, n=5, v=3, path=None):
    data = torch.randint(0, 256, (n, v, 3, 2, 4, 4), dtype=torch.uint8)
    disk = DiskVideos.create(tuple(data.shape), path=path, directory=tmp_path)
    write_clips(disk, 0, data.flatten(0, 1))
    return data, disk


def test_every_indexing_form_reads_what_was_written(tmp_path):
    data, disk = _filled(tmp_path)
    idx, views = torch.tensor([4, 0, 2]), torch.tensor([1, 2, 0])
    assert torch.equal(disk[:], data) and disk.shape == data.shape and len(disk) == 5
    assert torch.equal(disk[3], data[3]) and torch.equal(disk[1:4], data[1:4])
    assert torch.equal(disk[idx], data[idx]) and torch.equal(disk[idx, views], data[idx, views])
    assert torch.equal(disk[1:3, 0], data[1:3, 0])
    assert torch.equal(flat_clips(disk, 4, 11), data.flatten(0, 1)[4:11])


def test_a_subset_stays_on_disk_and_reads_its_own_videos(tmp_path):
    data, disk = _filled(tmp_path)
    clips = ClipSet(disk, torch.arange(5), torch.zeros(5, 2, dtype=torch.long))
    sub = clips.subset(torch.tensor([3, 1]))
    assert isinstance(sub.videos, DiskVideos) and sub.views == 3
    assert torch.equal(sub.videos[:], data[[3, 1]]) and torch.equal(sub.videos[1, 2], data[1, 2])


def test_anonymous_files_leave_nothing_behind_and_named_ones_reopen(tmp_path):
    _, anon = _filled(tmp_path)
    assert os.listdir(tmp_path) == []  # unlinked at once: the space goes with the last reference
    out = new_videos_like(anon)
    assert isinstance(out, DiskVideos) and out.directory == tmp_path
    data, named = _filled(tmp_path, path=tmp_path / "views" / "kept.u8")
    again = DiskVideos.open(tmp_path / "views" / "kept.u8")
    assert torch.equal(again[:], data)
    (tmp_path / "views" / "kept.u8").write_bytes(b"short")
    with pytest.raises(ValueError, match="size"):
        DiskVideos.open(tmp_path / "views" / "kept.u8")


def test_memory_videos_get_memory_outputs():
    videos = torch.zeros(2, 1, 3, 2, 4, 4, dtype=torch.uint8)
    out = new_videos_like(videos)
    write_clips(out, 1, torch.ones(1, 3, 2, 4, 4, dtype=torch.uint8))
    assert isinstance(out, torch.Tensor) and out.shape == videos.shape and (out[1] == 1).all()
