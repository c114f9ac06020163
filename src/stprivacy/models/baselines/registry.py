"""Every baseline by name: the fixed transforms applied, the learned networks built."""

from __future__ import annotations

from torch import nn

from stprivacy.data.clips import ClipSet
from stprivacy.errors import ConfigError
from stprivacy.models.baselines.bdq import BdqTransform
from stprivacy.models.baselines.config import (
    FIXED_NAMES,
    LEARNED_BASELINES,
    BdqConfig,
    SpactConfig,
    VitaConfig,
    check_baseline,
)
from stprivacy.models.baselines.fixed import FIXED_BASELINES
from stprivacy.models.baselines.spact import SpactTransform
from stprivacy.models.baselines.vita import VitaTransform

assert tuple(FIXED_BASELINES) == FIXED_NAMES, "models/baselines/config.py must list every fixed baseline"


def apply_baseline(name: str, clips: ClipSet) -> ClipSet:
    """A non-learned baseline applied to every view of every clip."""
    if check_baseline(name) in LEARNED_BASELINES:
        raise ConfigError(f"{name} is a learned baseline: train it first (stprivacy.training.baselines)")
    return FIXED_BASELINES[name](clips)


def build_learned_baseline(name: str, num_frames: int, vita: VitaConfig | None = None,
                           spact: SpactConfig | None = None, bdq: BdqConfig | None = None) -> nn.Module:
    """A fresh transform network of the learned baseline ``name``."""
    if check_baseline(name) == "vita":
        return VitaTransform(vita)
    if name == "spact":
        return SpactTransform(spact)
    if name == "bdq":
        return BdqTransform(num_frames, bdq)
    raise ConfigError(f"{name} is not a learned baseline; learned ones: {', '.join(LEARNED_BASELINES)}")
