"""Phase 3: freeze the anonymizer, anonymize every clip in inference mode, and train *fresh* recognizers and
attackers on the anonymized training split; test them on the anonymized test split.

Honesty rules, enforced by construction and tested:

* the attackers receive only a :class:`ClipSet` of uint8 videos, produced by :func:`anonymize_clips` under
  ``torch.inference_mode`` with the top-k path (dropped tubelets exactly zero), never the anonymizer, its weights
  or a training-mode output;
* the keep mask that travels with anonymized clips is what the video itself shows (its all-zero tubelets), so it
  gives the attackers nothing the video does not;
* every attacker family is trained and reported, and the headline privacy number is the worst case (highest cMAP).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from stprivacy.config import ExperimentConfig, peak_lr
from stprivacy.data.clips import ClipSet, to_float, to_uint8
from stprivacy.data.disk import DiskVideos, flat_clips, new_videos_like, write_clips
from stprivacy.evaluation.instruments import keep_mask_from_video
from stprivacy.evaluation.metrics import cmap, per_attribute_ap, privacy_f1, top1_accuracy
from stprivacy.evaluation.ridge import ridge_attack
from stprivacy.evaluation.subspace import subspace_attack
from stprivacy.layers.tubelets import TubeletGrid, kept_pixels
from stprivacy.models import STPrivacy, VideoRecognizer
from stprivacy.models.pretrained import with_pretrained
from stprivacy.models.recognizers import build_attacker
from stprivacy.runtime import RuntimeConfig, seed_everything
from stprivacy.training.supervised import FitConfig, fit, predict

log = logging.getLogger(__name__)


@torch.inference_mode()
def transform_clips(transform: Callable[[torch.Tensor], torch.Tensor], clips: ClipSet, runtime: RuntimeConfig,
                    batch_size: int = 64, desc: str = "transform", mask_grid: TubeletGrid | None = None,
                    out: DiskVideos | None = None) -> ClipSet:
    """Every view of every clip through ``transform`` (float B x 3 x T x H x W in [0, 1] -> the output video),
    quantised to uint8 like a video file. The transform must be in inference mode.

    The output is written batch by batch as it is produced: into ``out`` when given (a file, so phase 3's memory
    does not grow with the dataset), else beside the input (on disk for disk videos, in memory otherwise).

    With ``mask_grid``, the keep mask that travels with the clips is read off the published uint8 video (its
    all-zero tubelets, :func:`~stprivacy.evaluation.instruments.keep_mask_from_video`), never taken from the
    anonymizer's own decision: a deployed video is all an attacker has."""
    device = runtime.torch_device()
    n, v = len(clips), clips.views
    videos = out if out is not None else new_videos_like(clips.videos)
    masks = None
    if mask_grid is not None:
        masks = torch.empty((n * v, mask_grid.slices, mask_grid.tokens_per_slice), dtype=torch.uint8)
    for start in tqdm(range(0, n * v, batch_size), desc=desc, leave=False, disable=not runtime.progress):
        x = to_float(flat_clips(clips.videos, start, min(start + batch_size, n * v))).to(device)
        with runtime.autocast(device):
            result = transform(x)
        published = to_uint8(result).cpu()
        write_clips(videos, start, published)
        if masks is not None:
            masks[start:start + len(x)] = keep_mask_from_video(published, mask_grid)
    return ClipSet(videos, clips.actions, clips.attributes, clips.action_names,
                   clips.attribute_names, actor_masks=clips.actor_masks,
                   keep_masks=None if masks is None else masks.reshape(n, v, *masks.shape[1:]), names=clips.names)


def anonymize_clips(model: STPrivacy, clips: ClipSet, keep_ratio: float, runtime: RuntimeConfig,
                    batch_size: int = 64, out: DiskVideos | None = None) -> ClipSet:
    """Every clip through the inference-mode (top-k) anonymizer, published as uint8 with the keep masks the
    videos show (into ``out`` when given, see :func:`transform_clips`)."""
    model.to(runtime.torch_device()).eval()
    return transform_clips(lambda x: model.anonymize(x, keep_ratio)[0], clips, runtime, batch_size,
                           desc=f"anonymize a={keep_ratio}", mask_grid=model.grid, out=out)


#: The ablation that keeps the selector and drops the anonymizer (the paper's "sparsification only" row).
SPARSIFY_ONLY = "sparsify-only"


def sparsify_clips(model: STPrivacy, clips: ClipSet, keep_ratio: float, runtime: RuntimeConfig,
                   batch_size: int = 64, out: DiskVideos | None = None) -> ClipSet:
    """Sparsification alone: the tubelets the anonymizer keeps, with their *original* pixels, the rest black.
    With :func:`anonymize_clips` at ``a = 1`` (anonymization alone) it separates what each mechanism buys."""
    model.to(runtime.torch_device()).eval()

    def keep_raw(x: torch.Tensor) -> torch.Tensor:
        _, mask = model.anonymize(x, keep_ratio)
        return kept_pixels(x, mask, model.grid.tubelet)

    return transform_clips(keep_raw, clips, runtime, batch_size, desc=f"sparsify a={keep_ratio}",
                           mask_grid=model.grid, out=out)


def apply_learned_baseline(transform: nn.Module, clips: ClipSet, runtime: RuntimeConfig, name: str,
                           batch_size: int = 64) -> ClipSet:
    """Every clip through a trained learned baseline (VITA, SPAct, BDQ) in inference mode."""
    transform.to(runtime.torch_device()).eval()
    return transform_clips(transform, clips, runtime, batch_size, desc=name)


@dataclass
class AttackResult:
    cmap: float
    f1: float
    per_attribute_ap: list[float]
    #: What the attacker was, where a family has settings of its own (the ridge's grid, penalty, moments): a saved
    #: result judged with other settings is judged again.
    settings: dict | None = None


def attacker_settings(kind: str, cfg: ExperimentConfig) -> dict | None:
    """The settings that define an attacker family beyond its name (None for the trained families, whose
    epochs and sizes are the run's)."""
    if kind == "ridge":
        e = cfg.evaluate
        return {"cells": e.ridge_cells, "alpha": e.ridge_alpha, "moments": e.ridge_moments}
    if kind == "subspace":
        e = cfg.evaluate
        return {"tubelet": list(cfg.model.tubelet), "rank": e.subspace_rank, "scores": e.subspace_scores,
                "reader": e.subspace_reader}
    return None


@dataclass
class MethodResult:
    name: str
    keep_ratio: float | None
    seed: int
    action_top1: float
    attackers: dict[str, AttackResult] = field(default_factory=dict)
    #: Actor coverage of the kept tubelets on the test clips (STPrivacy on synthetic data; None elsewhere).
    coverage: float | None = None
    #: Share of the published test clips' variation inside 4 x 4 blocks (``evaluation/leakage.py``): how much of
    #: the output is a pixel-level pattern rather than an image (raw synthetic clips: about 0.2).
    fine_pattern: float | None = None
    #: cMAP (%) of a fresh linear attacker on the published test clips' keep masks alone
    #: (``instruments.keep_pattern_leak``): what *which* tubelets are shown tells (methods with masks only).
    keep_pattern: float | None = None

    @property
    def worst(self) -> tuple[str, AttackResult]:
        return max(self.attackers.items(), key=lambda kv: kv[1].cmap)


def _fit_cfg(cfg: ExperimentConfig, epochs: int) -> FitConfig:
    e = cfg.evaluate
    data = e.data or cfg.data
    return FitConfig(epochs=epochs, batch_size=e.batch_size, lr=peak_lr(e), weight_decay=e.weight_decay,
                     warmup_epochs=e.warmup_epochs, hflip=data.hflip)


def attack(kind: str, index: int, train: ClipSet, test: ClipSet, cfg: ExperimentConfig, seed: int, label: str
           ) -> AttackResult:
    """One fresh attacker of family ``kind`` (the ``index``-th configured) fitted on ``train``, scored on ``test``."""
    runtime, e = cfg.runtime, cfg.evaluate
    use_mask = train.keep_masks is not None and kind == "vit"
    if kind == "ridge":  # solved in closed form: no seed, no epochs
        probs = ridge_attack(train, test, e.ridge_cells, e.ridge_alpha, moments=e.ridge_moments)
    elif kind == "subspace":  # deterministic too
        probs = subspace_attack(train, test, tuple(cfg.model.tubelet), e.subspace_rank, e.subspace_scores,
                                e.subspace_reader)
    else:
        seed_everything(seed * 1000 + index + 1)
        attacker = build_attacker(kind, cfg.recognizer, cfg.frame_attacker, len(train.attribute_names))
        fit(attacker, train, "privacy", _fit_cfg(cfg, e.attacker_epochs or e.epochs), runtime, seed=seed,
            use_mask=use_mask, desc=f"{label} {kind}")
        probs = predict(attacker, test, "privacy", runtime, use_mask=use_mask)
    labels = test.attributes.numpy()
    return AttackResult(cmap(probs, labels), privacy_f1(probs, labels),
                        [None if np.isnan(a) else float(a) * 100 for a in per_attribute_ap(probs, labels)],
                        attacker_settings(kind, cfg))


def missing_attackers(result: MethodResult, cfg: ExperimentConfig) -> list[str]:
    """The configured attacker families a saved result has not been judged by yet, or by other settings."""
    return [kind for kind in cfg.evaluate.attackers
            if kind not in result.attackers or result.attackers[kind].settings != attacker_settings(kind, cfg)]


#: Attacker families whose result does not depend on the phase-3 seed (solved in closed form).
SEED_FREE_ATTACKERS = ("ridge", "subspace")


def evaluate_clips(name: str, keep_ratio: float | None, train: ClipSet, test: ClipSet, cfg: ExperimentConfig,
                   seed: int, saved: MethodResult | None = None,
                   seed_free: dict[str, AttackResult] | None = None) -> MethodResult:
    """Train a fresh action recognizer and every attacker on ``train``; measure them on ``test``. With a
    ``saved`` result of the same method and seed, only the attackers it lacks are trained (an attacker family
    added to ``evaluate.attackers`` after the fact), and attackers no longer configured are left out.
    ``seed_free`` (one dict per method's clips, shared over its seeds) holds the results of the attackers that do
    not depend on the seed, so that they are fitted once."""
    runtime, e = cfg.runtime, cfg.evaluate
    label = f"{name}" + (f" a={keep_ratio}" if keep_ratio is not None else "")
    if saved is None:
        use_mask = train.keep_masks is not None
        seed_everything(seed)
        action_model = with_pretrained(VideoRecognizer(cfg.recognizer, len(train.action_names)))
        fit(action_model, train, "action", _fit_cfg(cfg, e.epochs), runtime, seed=seed, use_mask=use_mask,
            desc=label)
        scores = predict(action_model, test, "action", runtime, use_mask=use_mask)
        result = MethodResult(name, keep_ratio, seed, top1_accuracy(scores, test.actions.numpy()))
    else:
        result = saved
    missing = set(missing_attackers(result, cfg))
    judged = dict(result.attackers)
    result.attackers = {}
    seed_free = {} if seed_free is None else seed_free
    for k, kind in enumerate(e.attackers):  # in the configured order, judged or not
        if kind not in missing:
            result.attackers[kind] = judged[kind]
        elif kind in seed_free:
            result.attackers[kind] = seed_free[kind]
        else:
            result.attackers[kind] = attack(kind, k, train, test, cfg, seed, label)
            if kind in SEED_FREE_ATTACKERS:
                seed_free[kind] = result.attackers[kind]
    log.info("%s seed %d: action %.2f, worst cMAP %.2f (%s)", label, seed, result.action_top1,
             result.worst[1].cmap, result.worst[0])
    return result
