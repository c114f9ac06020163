"""Phase 2's ``privacy_ridge``: phase 3's ridge attacker (``evaluation/ridge.py``) solved on recent outputs, in the
loop.

Why (docs/results/recipe_study.md, 2026-12-04, sixth session): the co-trained privacy recognizers are learners
of 50-100 batches on an output that never stands still, and phase 3's trained attackers read less than a ridge
regression on the frames' cell means does. A ridge regression has no training horizon: it is solved exactly on
whatever output it is given. So the anonymizer faces, at every step, the best linear reader of its recent outputs.

Each anonymizer step:

1. the ridge weights are solved from the statistics of the last ``buffer`` batches' detached features (not the
   current batch: the reading is out of sample, as an attacker's is);
2. the loss is the ridge's margin on the current batch (per attribute, the mean score of the frames whose clip
   has it minus the mean score of those whose clip has not, in units of the score's spread over the buffer)
   times the same margin on the ``window`` most recent buffered batches (detached), averaged over attributes.
   The ridge is solved on the older batches, so both margins are out of sample. The product is a squared margin
   whose gradient does not depend on the batch's own noise: each frame's gradient is the ridge's direction
   times its label, scaled by a margin measured on ``window`` times more clips. A squared correlation on the
   batch alone (the first version) scales the gradient by a 16-clip correlation whose sign the noise often gets
   wrong, and weights 8 and 32 of it did not lower it; a signed margin alone overshoots (a stale ridge keeps
   pushing after the leak has crossed zero), where the window's margin changes sign and pushes back;
3. the current batch's statistics join the buffer (the oldest leave).

Measured (validation, seed 0): it lowers its own reading (0.071 -> 0.029 at weight 2) and not that of a ridge
fitted on the final output (66.3 against 66.0 cMAP): the buffer's ridge, fitted on a few hundred clips, sees few
of the many weak directions that one fitted on 3,200 clips reads. Off in every preset.

The statistics are kept per batch (:class:`~stprivacy.evaluation.ridge.GramStats`) so that the buffer slides
without refitting anything old; the solve is one ``D x D`` system (D = 768 on a 16 x 16 grid). In a distributed
run each process keeps its own buffer; the gradients are averaged as usual.
"""

from __future__ import annotations

from collections import deque

import torch

from stprivacy.evaluation.ridge import GramStats, frame_samples


def margin(score: torch.Tensor, labels: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """Per column, the mean ``score`` where ``labels`` is positive minus where it is not, over ``spread``;
    columns with one class only give 0."""
    pos = (labels > 0).to(score.dtype)
    n_pos, n_neg = pos.sum(0), (1 - pos).sum(0)
    gap = (score * pos).sum(0) / n_pos.clamp(min=1) - (score * (1 - pos)).sum(0) / n_neg.clamp(min=1)
    return torch.where((n_pos > 0) & (n_neg > 0), gap / spread.clamp(min=1e-12), torch.zeros_like(gap))


class RidgeAttacker:
    """The ``privacy_ridge`` term: call it on the recognizers' view of the output and the batch's attributes."""

    def __init__(self, cells: int = 16, buffer: int = 32, alpha: float = 1e-3, min_batches: int = 8,
                 window: int = 4):
        if cells < 1 or alpha <= 0 or not 1 <= window < min_batches <= buffer:
            raise ValueError("ridge attacker: cells >= 1, alpha > 0, 1 <= window < min_batches <= buffer")
        self.cells, self.alpha, self.min_batches, self.window = cells, alpha, min_batches, window
        self.stats: deque[GramStats] = deque(maxlen=buffer)

    def reset(self) -> None:
        self.stats.clear()

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The ridge solved on the buffer but its ``window`` newest batches (weights ``D x K``, feature mean
        ``D``) and its scores' standard deviation there (``K``); None while fewer than ``min_batches`` batches are
        buffered."""
        if len(self.stats) < self.min_batches:
            return None
        older = list(self.stats)[:-self.window]
        total = sum(older[1:], older[0])
        w, mu, _ = total.solve(self.alpha)
        gram = total.gram - total.n * torch.outer(mu, mu)  # the scores' variance is w^T Cov(x) w
        spread = ((w * (gram @ w)).sum(0) / total.n).clamp(min=0).sqrt()
        return w, mu, spread

    def window_margin(self, w: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
        """The ridge's margin (``K``) on the ``window`` newest buffered batches, from their statistics alone: with
        targets +-1, the positives' feature sum is ``(sum_x + X^T y) / 2`` and their count ``(n + sum_y) / 2``."""
        newest = list(self.stats)[-self.window:]
        recent = sum(newest[1:], newest[0])
        n_pos = (recent.n + recent.sum_y) / 2
        n_neg = recent.n - n_pos
        sum_pos = (recent.sum_x.unsqueeze(1) + recent.cross) / 2  # D x K
        sum_neg = recent.sum_x.unsqueeze(1) - sum_pos
        gap = (w * (sum_pos / n_pos.clamp(min=1) - sum_neg / n_neg.clamp(min=1))).sum(0)
        both = (n_pos > 0) & (n_neg > 0)
        return torch.where(both, gap / spread.clamp(min=1e-12), torch.zeros_like(gap))

    def __call__(self, video: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        x, y = frame_samples(video, attributes, self.cells)  # every frame carries its clip's attributes
        fitted = self.weights()
        if fitted is None:
            loss = x.sum() * 0.0  # keeps the graph (and the device) without a gradient
        else:
            w, mu, spread = fitted
            now = margin((x - mu.to(x.dtype)) @ w.to(x.dtype), y, spread.to(x.dtype))
            loss = (now * self.window_margin(w, spread).to(x.dtype)).mean()
        self.stats.append(GramStats.of(x, y))
        return loss

