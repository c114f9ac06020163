"""Phase 2's ``privacy_ridge``: phase 3's ridge attacker (``evaluation/ridge.py``) solved on recent outputs, in the
loop.

Why (docs/results/recipe_study.md, 2026-12-04, sixth session): the co-trained privacy recognizers are learners
of 50-100 batches on an output that never stands still, and phase 3's trained attackers read less than a ridge
regression on the frames' cell means does. A ridge regression has no training horizon: it is solved exactly on
whatever output it is given. So the anonymizer faces, at every step, the best linear reader of its recent outputs.

Each anonymizer step:

1. the ridge weights are solved from the statistics of the last ``buffer`` batches' detached features (not the
   current batch: the reading is out of sample, as an attacker's is);
2. the loss is the mean over attributes of the squared correlation, over the current batch's frames, between
   that ridge's score and the attribute; its gradient reaches the anonymizer through the features;
3. the current batch's statistics join the buffer (the oldest leave).

The statistics are kept per batch (:class:`~stprivacy.evaluation.ridge.GramStats`) so that the buffer slides
without refitting anything old; the solve is one ``D x D`` system (D = 768 on a 16 x 16 grid). In a distributed
run each process keeps its own buffer; the gradients are averaged as usual.
"""

from __future__ import annotations

from collections import deque

import torch

from stprivacy.evaluation.ridge import GramStats, frame_samples

#: Squared correlations of attributes whose batch variance is below this are not counted (a batch where every
#: clip has the attribute, or none, says nothing about a reader of it).
MIN_LABEL_VAR = 1e-6


def squared_correlation(score: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per column, the squared Pearson correlation of ``score`` and ``labels`` (both ``n x K``); columns whose
    labels do not vary give 0."""
    s = score - score.mean(0)
    y = labels - labels.mean(0)
    var_y = y.pow(2).mean(0)
    cov = (s * y).mean(0)
    r2 = cov.pow(2) / (s.pow(2).mean(0) * var_y + 1e-12)
    return torch.where(var_y > MIN_LABEL_VAR, r2, torch.zeros_like(r2))


class RidgeAttacker:
    """The ``privacy_ridge`` term: call it on the recognizers' view of the output and the batch's attributes."""

    def __init__(self, cells: int = 16, buffer: int = 32, alpha: float = 1e-3, min_batches: int = 8):
        if cells < 1 or buffer < 1 or alpha <= 0 or not 1 <= min_batches <= buffer:
            raise ValueError("ridge attacker: cells, buffer >= 1, alpha > 0, 1 <= min_batches <= buffer")
        self.cells, self.alpha, self.min_batches = cells, alpha, min_batches
        self.stats: deque[GramStats] = deque(maxlen=buffer)

    def reset(self) -> None:
        self.stats.clear()

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The ridge solution on the buffer (:meth:`GramStats.solve`), or None while fewer than ``min_batches``
        batches are buffered."""
        if len(self.stats) < self.min_batches:
            return None
        total = self.stats[0]
        for part in list(self.stats)[1:]:
            total = total + part
        return total.solve(self.alpha)

    def __call__(self, video: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        x, y = frame_samples(video, attributes, self.cells)  # every frame carries its clip's attributes
        fitted = self.weights()
        if fitted is None:
            loss = x.sum() * 0.0  # keeps the graph (and the device) without a gradient
        else:
            w, mu, _ = fitted
            loss = squared_correlation((x - mu.to(x.dtype)) @ w.to(x.dtype), y).mean()
        self.stats.append(GramStats.of(x, y))
        return loss
