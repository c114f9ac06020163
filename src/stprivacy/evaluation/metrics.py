"""The paper's metrics with explicit conventions.

* Action: top-1 accuracy (%) of the class with the highest score averaged over a video's views.
* Privacy: cMAP (%) = mean over attributes of average precision (``sklearn.metrics.average_precision_score``) of the
  sigmoid probabilities; F1 = mean over attributes of the F1 score at probability threshold 0.5 (logit 0).
  An attribute with no positive in the test split has undefined AP and is left out of the mean (reported as NaN).
  Lower is better for both privacy numbers.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, f1_score


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """``scores``: N x C (logits or probabilities), ``labels``: N -> accuracy in %."""
    return float((np.asarray(scores).argmax(1) == np.asarray(labels)).mean() * 100)


def per_attribute_ap(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AP of each attribute (NaN where the split has no positive)."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    out = np.full(labels.shape[1], np.nan)
    for k in range(labels.shape[1]):
        if labels[:, k].any():
            out[k] = average_precision_score(labels[:, k], probs[:, k])
    return out


def cmap(probs: np.ndarray, labels: np.ndarray) -> float:
    """Class-mean average precision in %."""
    return float(np.nanmean(per_attribute_ap(probs, labels)) * 100)


def privacy_f1(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Mean over attributes of F1 at ``probs >= threshold``."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    pred = probs >= threshold
    return float(np.mean([f1_score(labels[:, k], pred[:, k], zero_division=0) for k in range(labels.shape[1])]))


def chance_cmap(labels: np.ndarray) -> float:
    """cMAP of an attacker that knows only the label prior: AP equals the positive rate for constant scores."""
    labels = np.asarray(labels)
    rates = labels.mean(0)
    return float(np.mean(rates[rates > 0]) * 100)
