import torch

from stprivacy.config import DataConfig
from stprivacy.data.build import split_validation
from stprivacy.data.clips import ClipSet


def _clips(n=10):
    videos = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1, 1, 1).expand(n, 1, 3, 2, 4, 4).clone()
    return ClipSet(videos, torch.arange(n) % 3, (torch.arange(n)[:, None] >> torch.arange(2)) % 2,
                   ["a", "b", "c"], ["x", "y"], names=[f"v{i}" for i in range(n)])


def test_a_subset_of_videos_in_memory_picks_the_clips_and_their_labels():
    # torch.Tensor has select(dim, index): the subset must not take it for a container's select(index)
    clips = _clips()
    sub = clips.subset(torch.tensor([7, 2]))
    assert sub.videos[:, 0, 0, 0, 0, 0].tolist() == [7, 2]
    assert sub.actions.tolist() == [1, 2] and sub.names == ["v7", "v2"]
    assert torch.equal(sub.attributes, clips.attributes[[7, 2]])


def test_a_validation_slice_of_clips_in_memory_is_disjoint_and_complete():
    clips = _clips(20)
    train, val = split_validation(DataConfig(kind="manifest", val_fraction=0.25), 0, clips, progress=False)
    seen = train.videos[:, 0, 0, 0, 0, 0].tolist() + val.videos[:, 0, 0, 0, 0, 0].tolist()
    assert len(val) == 5 and sorted(seen) == list(range(20))
    assert val.subset(torch.tensor([0])).names == val.names[:1]
