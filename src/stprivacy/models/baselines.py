"""Baseline video transforms evaluated by the same phase-3 harness as STPrivacy.

``raw`` is the unmodified video. Each baseline maps a :class:`ClipSet` to a :class:`ClipSet` of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable

from stprivacy.data.clips import ClipSet

BASELINES: dict[str, Callable[[ClipSet], ClipSet]] = {
    "raw": lambda clips: clips,
}


def apply_baseline(name: str, clips: ClipSet) -> ClipSet:
    try:
        return BASELINES[name](clips)
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; available: {sorted(BASELINES)}") from None
