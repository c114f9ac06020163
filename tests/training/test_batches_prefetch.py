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
