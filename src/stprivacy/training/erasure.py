"""After phase 2 (``train.linear_erasure``): fit the anonymizer's linear erasers on its published training clips.

For every keep ratio it will be deployed at, the trained anonymizer decodes every view of every training clip in
inference mode; each clip's coefficients in the decoder's basis, with the clip's private attributes, fit one
LEACE eraser (:class:`~stprivacy.models.erasure.LinearEraser`), which the anonymizer then applies to everything it
publishes at that ratio. Deterministic: no seed, no learning rate, seconds on a CPU.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from stprivacy.data.clips import ClipSet, to_float
from stprivacy.data.disk import flat_clips
from stprivacy.evaluation.leakage import action_probe, linear_probe
from stprivacy.models import STPrivacy
from stprivacy.models.erasure import LinearEraser, coefficients, decoder_basis
from stprivacy.runtime import RuntimeConfig

log = logging.getLogger(__name__)


def erasure_ratios(cfg) -> list[float]:
    """The keep ratios a run's linear erasers are fitted for (``train.erasure_keep_ratios``, by default training's
    and 1, the anonymization-only ablation); largest first."""
    return sorted(set(cfg.train.erasure_keep_ratios or (cfg.model.keep_ratio, 1.0)), reverse=True)


def refit_in_loop(f: STPrivacy, train: ClipSet, cfg, draw: int) -> dict:
    """``train.erasure_refit_every``: refit every eraser on a random sample of ``erasure_refit_clips`` training
    clips at the anonymizer's current state (phase 2 then trains through them), and put ``f`` back in training
    mode. Deterministic in ``draw``, so every rank of a distributed run fits the same erasers."""
    n = min(cfg.train.erasure_refit_clips, len(train))
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed * 7919 + draw))[:n]
    was_training = f.training
    ratios = fit_erasers(f, train.subset(pick), erasure_ratios(cfg), cfg.runtime)
    f.train(was_training)
    return {"keep_ratios": ratios, "clips": n}


def clip_coefficients(model: STPrivacy, clips: ClipSet, keep_ratio: float, basis: torch.Tensor,
                      offset: torch.Tensor, runtime: RuntimeConfig, batch_size: int = 64) -> torch.Tensor:
    """``(N * V) x S x r`` decoder coefficients of every view of every clip (zero where dropped), before erasure."""
    device = runtime.torch_device()
    model.to(device).eval()
    n = len(clips) * clips.views
    rows = []
    for start in tqdm(range(0, n, batch_size), desc=f"erasure a={keep_ratio}", leave=False,
                      disable=not runtime.progress):
        x = to_float(flat_clips(clips.videos, start, min(start + batch_size, n))).to(device)
        tubelets, keep = model.decoded_tubelets(x, keep_ratio)
        rows.append(coefficients(tubelets.float(), keep, basis.to(device), offset.to(device)).cpu())
    return torch.cat(rows)


def erasure_readings(model: STPrivacy, val: ClipSet, runtime: RuntimeConfig) -> dict[str, float]:
    """The instrument of the erasers, on validation clips they were not fitted on: per keep ratio, the mean AP
    over the attributes of a linear probe (logistic regression, out of fold on ``val``) on the clips' coefficient
    vectors before and after erasure, after erasure on the coefficients and their squares (a second-order
    reader, which an eraser of first moments does not stop), and the top-1 of a linear action probe before and
    after (what the eraser cost the action, as far as a linear reader sees)."""
    out = {}
    attributes = val.attributes.repeat_interleave(val.views, dim=0)
    actions = val.actions.repeat_interleave(val.views, dim=0)
    for eraser in model.erasers.values():
        a = round(float(eraser.keep_ratio), 6)
        before = clip_coefficients(model, val, a, eraser.basis, eraser.offset, runtime)
        after = eraser.erase_coefficients(before).flatten(1)
        before = before.flatten(1)
        for name, feats in (("before", before), ("after", after), ("after_squares", torch.cat([after, after ** 2], 1))):
            live = feats[:, feats.std(0) > 0].double().numpy()
            out[f"val_linear_{name}_a{a:g}"] = float(linear_probe(live, attributes).mean())
            if name != "after_squares":
                out[f"val_linear_action_{name}_a{a:g}"] = action_probe(live, actions)
    return out


def fit_erasers(model: STPrivacy, clips: ClipSet, keep_ratios: list[float], runtime: RuntimeConfig) -> list[float]:
    """Fit one eraser per keep ratio (ratios with the same keep counts share one) on ``clips`` and install them
    in ``model``. Returns the ratios fitted."""
    if len(clips) < 2:
        raise ValueError(f"linear erasure needs labelled training clips to fit on, got {len(clips)}")
    basis, offset = decoder_basis(model.decode, model.cfg.embed_dim)
    attributes = clips.attributes.float().repeat_interleave(clips.views, dim=0)
    fitted, seen = [], set()
    for a in sorted(set(keep_ratios), reverse=True):
        counts = tuple(model.keep_counts(a))
        if counts in seen:
            continue
        seen.add(counts)
        x = clip_coefficients(model, clips, a, basis, offset, runtime)
        model.set_eraser(a, LinearEraser.fit(basis, offset, x, attributes, a))
        fitted.append(a)
        log.info("linear eraser fitted at a=%g on %d clips (%d coefficients each, rank %d)", a, len(x),
                 x[0].numel(), basis.shape[1])
    return fitted
