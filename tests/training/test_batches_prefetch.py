"""Background batch assembly: same batches in the same order, errors passed on, early close stops the thread."""

import threading

import pytest
import torch

from stprivacy.training.batches import prefetch


def numbered(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("broken batch")
        yield {"video": torch.full((2, 3), float(i))}


def test_prefetch_keeps_order_and_content():
    got = [int(b["video"][0, 0]) for b in prefetch(numbered(7), depth=2)]
    assert got == list(range(7))


def test_prefetch_passes_errors_on():
    with pytest.raises(RuntimeError, match="broken batch"):
        list(prefetch(numbered(5, fail_at=3)))


def test_closing_early_stops_the_worker_before_returning():
    consumed = []

    def counting():
        for i in range(1000):
            consumed.append(i)
            yield {"video": torch.zeros(1)}

    it = prefetch(counting(), depth=2)
    next(it)
    it.close()
    assert not any(t.name == "stprivacy-prefetch" for t in threading.enumerate())
    n = len(consumed)
    assert n <= 5  # one taken, at most depth queued plus one being made
    assert len(consumed) == n  # and nothing more is drawn afterwards


def test_uint8_batches_become_the_same_float_batches_on_the_device():
    from stprivacy.data.clips import ClipSet
    from stprivacy.training.batches import iterate_batches
    from stprivacy.training.distributed import backward_parts

    videos = torch.randint(0, 256, (6, 1, 3, 2, 4, 4), dtype=torch.uint8)
    clips = ClipSet(videos, torch.arange(6), torch.ones(6, 5, dtype=torch.uint8))
    a = next(iterate_batches(clips, 6, shuffle=True, generator=torch.Generator().manual_seed(1), hflip=True))
    b = next(iterate_batches(clips, 6, shuffle=True, generator=torch.Generator().manual_seed(1), hflip=True,
                             as_uint8=True))
    assert b["video"].dtype == torch.uint8
    seen = []
    backward_parts(b, lambda part: (seen.append(part) or {"total": torch.zeros((), requires_grad=True)}, None),
                   torch.device("cpu"))
    torch.testing.assert_close(seen[0]["video"], a["video"])
    assert torch.equal(seen[0]["attributes"], a["attributes"])  # labels are not rescaled
