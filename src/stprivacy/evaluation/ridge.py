"""A linear attacker solved in closed form: ridge regression on every frame's cell means.

Measured on the synth-quick preset's published output (docs/results/recipe_study.md, 2026-12-04, sixth session):
this attacker reads the private attributes *better* than phase 3's trained ViT and frame CNN (at a = 1, 66-79 cMAP
on validation against the CNN's 56-60 on test). The trained attackers learn for a few epochs and miss weak
signals spread over many pixels; a ridge regression is solved exactly, so no training horizon limits it. It is
three things in this project:

* a phase-3 attacker family, ``"ridge"`` in ``evaluate.attackers`` (:func:`ridge_attack`): fitted on the
  anonymized training split, scored on the anonymized test split, like the others;
* a validation instrument (:func:`ridge_probe`, out of fold), logged by phase 2 every epoch;
* an attacker in phase 2's loop (``train.privacy_ridge``, ``training/linear_attacker.py``), and, learnt by
  gradient steps instead, phase 2's ``"linear"`` adversary family (``models.recognizers.CellLinearAttacker``).

Features: each frame is averaged over a ``cells`` x ``cells`` grid (16 x 16 x 3 = 768 numbers at any frame size
the grid divides; the synthetic presets' phase 3 uses 32 x 32, 3,072 numbers), with ``moments = 2`` also the
cell means of the squared pixels (twice as many numbers: each cell's contrast, which reads a silhouette that the
plain means average away; measured on the synth-quick output in docs/results/recipe_study.md, tenth session).
Every frame is one sample carrying its clip's attributes as targets +-1, and the same weights serve every frame;
a clip's score is the mean over its frames (and views). The penalty is ``alpha`` times the features' mean
variance times the sample count, so that ``alpha`` means the same at any scale and data size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from stprivacy.data.clips import ClipSet, to_float
from stprivacy.layers.cells import cell_mean_features


@dataclass
class GramStats:
    """Sufficient statistics of a ridge regression (float64): sample count, feature and target sums, ``X^T X``
    and ``X^T Y``. Statistics of disjoint data add up, so a fit can stream over clips or slide over batches."""

    n: float
    sum_x: torch.Tensor
    sum_y: torch.Tensor
    gram: torch.Tensor
    cross: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor) -> GramStats:
        """Statistics of samples ``x`` (``n x D``) with targets ``y`` (``n x K``)."""
        x, y = x.detach().double(), y.detach().double()
        return cls(float(len(x)), x.sum(0), y.sum(0), x.T @ x, x.T @ y)

    def __add__(self, other: GramStats) -> GramStats:
        return GramStats(self.n + other.n, self.sum_x + other.sum_x, self.sum_y + other.sum_y,
                         self.gram + other.gram, self.cross + other.cross)

    def solve(self, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ridge weights ``D x K``, feature mean ``D`` and target mean ``K``: a sample's prediction is
        ``(x - mean_x) @ w + mean_y``."""
        mu, mu_y = self.sum_x / self.n, self.sum_y / self.n
        gram = self.gram - self.n * torch.outer(mu, mu)
        cross = self.cross - self.n * torch.outer(mu, mu_y)
        penalty = alpha * gram.diagonal().mean().clamp(min=1e-12)
        eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
        return torch.linalg.solve(gram + penalty * eye, cross), mu, mu_y


def frame_samples(video: torch.Tensor, attributes: torch.Tensor, cells: int, moments: int = 1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame of ``video`` as a sample: ``(B T) x D`` cell moments and ``(B T) x K`` targets +-1."""
    feats = cell_mean_features(video, cells, moments)
    b, t, d = feats.shape
    return feats.reshape(b * t, d), (2.0 * attributes.float() - 1).repeat_interleave(t, dim=0)


def clip_scores(video: torch.Tensor, fitted: tuple[torch.Tensor, ...], cells: int, moments: int = 1
                ) -> torch.Tensor:
    """``B x K`` scores of ``video`` (``B x 3 x T x H x W`` in [0, 1]): the mean over frames of the ridge's
    prediction."""
    w, mu, mu_y = fitted
    feats = cell_mean_features(video, cells, moments).double()
    return ((feats - mu) @ w + mu_y).mean(dim=1)


def _batches(clips: ClipSet, batch_size: int):
    for start in range(0, len(clips), batch_size):
        yield start, clips.videos[start:start + batch_size]


def clip_statistics(clips: ClipSet, cells: int = 16, batch_size: int = 64,
                    device: torch.device | str = "cpu", moments: int = 1) -> GramStats:
    """The ridge's statistics over every frame of every view of ``clips`` (uint8 or float videos), computed on
    ``device``."""
    stats = None
    for start, videos in _batches(clips, batch_size):
        attributes = clips.attributes[start:start + len(videos)].to(device)
        for v in range(videos.shape[1]):  # phase 3's training clips may hold several drawn views
            part = GramStats.of(*frame_samples(to_float(videos[:, v].to(device)), attributes, cells, moments))
            stats = part if stats is None else stats + part
    return stats


def ridge_attack(train: ClipSet, test: ClipSet, cells: int = 16, alpha: float = 1e-3, batch_size: int = 64,
                 moments: int = 1) -> np.ndarray:
    """Phase 3's ridge attacker: fitted on every view of the (published) ``train`` clips, it returns ``N x K``
    probabilities on ``test`` (a logistic squashing of the mean score over frames and views; a score of 0, halfway
    between the targets, is 1/2)."""
    fitted = clip_statistics(train, cells, batch_size, moments=moments).solve(alpha)
    scores = []
    for _, videos in _batches(test, batch_size):
        views = [clip_scores(to_float(videos[:, v]), fitted, cells, moments) for v in range(videos.shape[1])]
        scores.append(torch.stack(views).mean(0))
    return torch.sigmoid(2 * torch.cat(scores)).float().numpy()


def ridge_probe(videos: torch.Tensor, attributes: torch.Tensor, cells: int = 16, alpha: float = 1e-3,
                folds: int = 2, seed: int = 0, moments: int = 1) -> np.ndarray:
    """Per-attribute AP (in %) of the ridge attacker on ``N x 3 x T x H x W`` videos in [0, 1], out of fold over
    clips (the folds stratified by attribute)."""
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedKFold

    x, y = frame_samples(videos, attributes, cells, moments)
    t = videos.shape[2]
    x, y = x.reshape(len(videos), t, -1), y.reshape(len(videos), t, -1)
    labels = attributes.numpy()
    aps = []
    for k in range(labels.shape[1]):
        scores = np.zeros(len(labels))
        for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels[:, k]):
            fitted = GramStats.of(x[fit].flatten(0, 1), y[fit, :, k:k + 1].flatten(0, 1)).solve(alpha)
            scores[held] = clip_scores(videos[held], fitted, cells, moments)[:, 0].numpy()
        aps.append(100 * average_precision_score(labels[:, k], scores))
    return np.array(aps)
