"""Where an anonymized video leaks: in its colours, in fine patterns a fresh attacker learns to read, or in its motion.

Three cheap instruments that explain a fresh attacker's reading (``benchmarks/leak_probe.py`` applies them to a
run):

* :func:`colour_probe`: the AP of a linear probe on each clip's colour histogram (non-black pixels). A high AP
  means the attribute survives as colour; a low one, with a fresh CNN still reading the attribute, means it is
  carried by spatial patterns.
* :func:`fine_pattern_share`: the share of the kept pixels' energy (around their block means) that lies inside
  ``k`` x ``k`` blocks. A natural image at 64 x 64 has little there; an anonymizer that writes a pixel-level code
  has most of its signal there.
* :func:`motion_probe`: the AP of a linear probe on the clip's *motion energy* alone (grey-level frame differences
  pooled in cells): what any output that shows the motion faithfully gives away. On the raw synthetic clips it
  reads skin colour at 94 AP: a light hand on a light background moves with little contrast, a dark one with much,
  so the motion an action recognizer needs carries the attribute (docs/results/recipe_study.md).
* :func:`stprivacy.evaluation.ridge.ridge_probe` (its own module): a ridge regression on every frame's cell
  means, which reads the synthetic benchmark's outputs better than the trained attackers do.
* :func:`attribute_difference_maps`: per attribute, the mean frame of the clips that have it minus the mean frame
  of those that do not: where, and in which colour, a linear reader of frame means finds its first-order signal.
* :func:`mask_only_view`: the published clips with every kept tubelet grey and the rest black, the keep pattern
  alone, for a fresh phase-3 suite to read (what *which* tubelets are kept tells by itself).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from stprivacy.data.clips import ClipSet
from stprivacy.layers.cells import motion_energy_cells
from stprivacy.layers.tubelets import TubeletGrid, keep_mask_pixels
from stprivacy.models.baselines.fixed import pixelate

#: Pixels whose channels sum below this (on a [0, 1] scale) count as black: dropped tubelets, not content.
BLACK = 0.02


def colour_histograms(videos: torch.Tensor, bins: int = 8) -> np.ndarray:
    """``N x 3 x T x H x W`` videos in [0, 1] -> ``N x (3 bins + 3)``: each channel's histogram of the clip's
    non-black pixels (as fractions) and their mean colour."""
    rows = []
    for video in videos:
        pixels = video.permute(1, 2, 3, 0).reshape(-1, 3)
        pixels = pixels[pixels.sum(1) > BLACK]
        if len(pixels) == 0:
            rows.append(np.zeros(3 * bins + 3))
            continue
        hist = [torch.histc(pixels[:, c], bins=bins, min=0.0, max=1.0) / len(pixels) for c in range(3)]
        rows.append(torch.cat([*hist, pixels.mean(0)]).numpy())
    return np.stack(rows)


def linear_probe(feats: np.ndarray, attributes: torch.Tensor, folds: int = 2, seed: int = 0) -> np.ndarray:
    """Per-attribute AP (in %) of a logistic regression on ``N x D`` features, out of fold."""
    labels = attributes.numpy()
    aps = []
    for k in range(labels.shape[1]):
        y = labels[:, k]
        scores = np.zeros(len(y))
        split = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for fit, held in split.split(feats, y):
            clf = LogisticRegression(max_iter=2000).fit(feats[fit], y[fit])
            scores[held] = clf.predict_proba(feats[held])[:, 1]
        aps.append(100 * average_precision_score(y, scores))
    return np.array(aps)


def held_out_probe(fit_feats: np.ndarray, fit_attributes: torch.Tensor, feats: np.ndarray,
                   attributes: torch.Tensor, c: float = 0.1) -> np.ndarray:
    """Per-attribute AP (in %) on ``feats`` of :func:`held_out_scores`: a reader with more clips to learn from
    than an out-of-fold probe of one split, for feature sets too wide for that."""
    probs = held_out_scores(fit_feats, fit_attributes.numpy(), feats, c)
    return np.array([100 * average_precision_score(attributes[:, k].numpy(), probs[:, k])
                     for k in range(attributes.shape[1])])


def held_out_scores(fit_feats: np.ndarray, fit_labels: np.ndarray, feats: np.ndarray, c: float = 0.1,
                    classifier=None) -> np.ndarray:
    """``N x K`` probabilities on ``feats`` of one classifier per binary label, fitted on ``fit_feats`` (features
    standardised on the fitting set); 1/2 for a label with one class in the fitting set. ``classifier``: a
    function returning a fresh scikit-learn classifier (None = an L2-regularised logistic regression of
    strength ``c``)."""
    classifier = classifier or (lambda: LogisticRegression(C=c, max_iter=3000))
    scaler = StandardScaler().fit(fit_feats)
    fit_feats, feats = scaler.transform(fit_feats), scaler.transform(feats)
    probs = np.full((len(feats), fit_labels.shape[1]), 0.5)
    for k in range(fit_labels.shape[1]):
        if len(np.unique(fit_labels[:, k])) == 2:
            probs[:, k] = classifier().fit(fit_feats, fit_labels[:, k]).predict_proba(feats)[:, 1]
    return probs


def action_probe(feats: np.ndarray, actions: torch.Tensor, folds: int = 2, seed: int = 0) -> float:
    """Top-1 (in %) of a multinomial logistic regression on ``N x D`` features predicting the action, out of fold:
    how much of the action a linear reader finds in them."""
    labels = actions.numpy()
    predicted = np.zeros(len(labels), dtype=labels.dtype)
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(feats, labels):
        predicted[held] = LogisticRegression(max_iter=2000).fit(feats[fit], labels[fit]).predict(feats[held])
    return float(100 * (predicted == labels).mean())


def colour_probe(videos: torch.Tensor, attributes: torch.Tensor, folds: int = 2, seed: int = 0) -> np.ndarray:
    """Per-attribute AP (in %) of a logistic regression on :func:`colour_histograms`, out of fold."""
    return linear_probe(colour_histograms(videos), attributes, folds, seed)


def motion_energy(videos: torch.Tensor, cell: int = 8) -> np.ndarray:
    """``N x 3 x T x H x W`` videos in [0, 1] -> ``N x (T - 1) (H / cell) (W / cell)``: the mean absolute
    difference of consecutive grey-level frames in every ``cell`` x ``cell`` cell
    (:func:`~stprivacy.layers.cells.motion_energy_cells`), flattened."""
    return motion_energy_cells(videos, cell).reshape(len(videos), -1).numpy()


def motion_probe(videos: torch.Tensor, attributes: torch.Tensor, cell: int = 8, folds: int = 2, seed: int = 0
                 ) -> np.ndarray:
    """Per-attribute AP (in %) of a logistic regression on :func:`motion_energy`, out of fold."""
    feats = motion_energy(videos, cell)
    # energies are a few hundredths: standardised, the regression's default penalty means the same on every cell
    return linear_probe((feats - feats.mean(0)) / (feats.std(0) + 1e-6), attributes, folds, seed)


def fine_pattern_share(videos: torch.Tensor, k: int = 4) -> float:
    """Energy of the non-black pixels around their ``k`` x ``k`` block means, over their energy around the clip's
    mean colour (0 = the video is constant in every block; 1 = all its variation is inside blocks)."""
    n, c, t, h, w = videos.shape
    frames = videos.transpose(1, 2).reshape(n * t, c, h, w).float()
    lit = (frames.sum(1, keepdim=True) > BLACK).float()
    # block means over the block's non-black pixels only: a black neighbour (a dropped tubelet, a blackened
    # person) is no variation of the content, and with these means the share cannot exceed 1
    block_means = pixelate(frames * lit, k) / pixelate(lit, k).clamp_min(1e-12)
    inside = ((frames - block_means) ** 2 * lit).sum()
    centre = (frames * lit).sum((0, 2, 3), keepdim=True) / lit.sum().clamp_min(1)
    total = ((frames - centre) ** 2 * lit).sum()
    return float(inside / total.clamp_min(1e-12))


def published_fine_pattern(videos, limit: int = 256, k: int = 4) -> float | None:
    """:func:`fine_pattern_share` of the first view of the first ``limit`` published uint8 clips (``N x V x 3 x T x
    H x W``, a tensor or on disk); None when the frames do not divide into ``k`` x ``k`` blocks."""
    if videos.shape[-1] % k or videos.shape[-2] % k:
        return None
    return fine_pattern_share(videos[:limit, 0].float() / 255, k)


def mask_only_view(clips: ClipSet, grid: TubeletGrid) -> ClipSet:
    """Published clips (with their keep masks) -> the same clips showing only the keep mask: every kept tubelet
    mid-grey (128), the rest black. An attacker trained on these reads the private attributes from the pattern
    alone; the action is there too, as far as the pattern carries it."""
    if clips.keep_masks is None:
        raise ValueError("the mask-only view needs published clips with keep masks")
    v = clips.videos
    n, views = v.shape[:2]
    masks = clips.keep_masks.reshape(n * views, *clips.keep_masks.shape[2:])
    lit = (keep_mask_pixels(masks, grid) * 128).to(torch.uint8).reshape(n, views, 1, *v.shape[3:])
    return dataclasses.replace(clips, videos=lit.expand_as(v).contiguous())


def attribute_difference_maps(videos: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """``N x 3 x T x H x W`` clips and ``N x K`` {0, 1} attributes -> ``K x 3 x H x W``: for each attribute, the
    frame average of the clips with it minus that of the clips without it (zero where a class is empty). The ridge
    attacker reads weighted sums of such frame means; its first-order signal is this map."""
    frames = videos.float().mean(dim=2)  # N x 3 x H x W, each clip's mean frame
    maps = []
    for k in range(attributes.shape[1]):
        has = attributes[:, k].bool()
        if has.all() or not has.any():
            maps.append(torch.zeros_like(frames[0]))
        else:
            maps.append(frames[has].mean(dim=0) - frames[~has].mean(dim=0))
    return torch.stack(maps)
