"""The baselines STPrivacy is compared with, each a video transform judged by the same phase-3 harness
(METHOD.md section 7).

* non-learned (:mod:`.fixed`): ``raw``, ``downsample2x``, ``downsample4x``, ``blur_weak``, ``blur_strong``,
  ``blackening``: functions from a :class:`~stprivacy.data.clips.ClipSet` to one of the same shape;
* learned: ``vita`` (:mod:`.vita`), ``spact`` (:mod:`.spact`), ``bdq`` (:mod:`.bdq`): networks from a float
  ``B x 3 x T x H x W`` video in [0, 1] to one of the same shape, trained with their own published objective by
  :mod:`stprivacy.training.baselines`.
"""

from __future__ import annotations

from torch import nn

from stprivacy.data.clips import ClipSet
from stprivacy.errors import ConfigError
from stprivacy.models.baselines.bdq import BdqConfig, BdqTransform
from stprivacy.models.baselines.fixed import FIXED_BASELINES
from stprivacy.models.baselines.spact import SpactConfig, SpactTransform
from stprivacy.models.baselines.vita import VitaConfig, VitaTransform

LEARNED_BASELINES = ("vita", "spact", "bdq")
BASELINES = (*FIXED_BASELINES, *LEARNED_BASELINES)


def check_baseline(name: str) -> str:
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    return name


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


__all__ = [
    "BASELINES",
    "FIXED_BASELINES",
    "LEARNED_BASELINES",
    "BdqConfig",
    "BdqTransform",
    "SpactConfig",
    "SpactTransform",
    "VitaConfig",
    "VitaTransform",
    "apply_baseline",
    "build_learned_baseline",
    "check_baseline",
]
