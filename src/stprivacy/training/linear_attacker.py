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

**Refit mode** (``privacy_ridge_refit_every = K``): every K batches the ridge is solved afresh on the *published*
output (inference mode, uint8, as phase 3 sees it) of ``privacy_ridge_refit_clips`` training clips, and held
fixed until the next refit; its margin on a held-out quarter of those clips replaces the window's. This is the
attacker phase 3 fits, at the anonymizer's current state, on as many clips as the sliding buffer never held
(:meth:`RidgeAttacker.refit`).

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
        #: refit mode: the ridge (weights, feature mean, score spread) and its held-out margin, fixed between refits
        self.fixed: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        self.stats.clear()
        self.fixed = None

    def refit(self, fit: GramStats, held_out: GramStats) -> torch.Tensor:
        """Refit mode: solve the ridge on ``fit`` and keep it, with its margin on ``held_out`` (returned, ``K``),
        until the next refit; the sliding buffer is no longer used."""
        w, mu, _ = fit.solve(self.alpha)
        spread = _score_spread(fit, w, mu)
        self.fixed = (w, mu, spread, _margin_of(held_out, w, spread))
        return self.fixed[3]

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The ridge solved on the buffer but its ``window`` newest batches (weights ``D x K``, feature mean
        ``D``) and its scores' standard deviation there (``K``); None while fewer than ``min_batches`` batches are
        buffered."""
        if len(self.stats) < self.min_batches:
            return None
        older = list(self.stats)[:-self.window]
        total = sum(older[1:], older[0])
        w, mu, _ = total.solve(self.alpha)
        return w, mu, _score_spread(total, w, mu)

    def window_margin(self, w: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
        """The ridge's margin (``K``) on the ``window`` newest buffered batches."""
        newest = list(self.stats)[-self.window:]
        return _margin_of(sum(newest[1:], newest[0]), w, spread)

    def __call__(self, video: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        x, y = frame_samples(video, attributes, self.cells)  # every frame carries its clip's attributes
        if self.fixed is not None:
            w, mu, spread, held_out = self.fixed
            now = margin((x - mu.to(x.dtype)) @ w.to(x.dtype), y, spread.to(x.dtype))
            return (now * held_out.to(x.dtype)).mean()
        fitted = self.weights()
        if fitted is None:
            loss = x.sum() * 0.0  # keeps the graph (and the device) without a gradient
        else:
            w, mu, spread = fitted
            now = margin((x - mu.to(x.dtype)) @ w.to(x.dtype), y, spread.to(x.dtype))
            loss = (now * self.window_margin(w, spread).to(x.dtype)).mean()
        self.stats.append(GramStats.of(x, y))
        return loss



def _score_spread(stats: GramStats, w: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """The standard deviation (``K``) of the ridge's scores over ``stats``' samples: ``sqrt(w^T Cov(x) w)``."""
    gram = stats.gram - stats.n * torch.outer(mu, mu)
    return ((w * (gram @ w)).sum(0) / stats.n).clamp(min=0).sqrt()


def _margin_of(stats: GramStats, w: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """The ridge's margin (``K``) on the samples behind ``stats``, from their statistics alone: with targets +-1,
    the positives' feature sum is ``(sum_x + X^T y) / 2`` and their count ``(n + sum_y) / 2``."""
    n_pos = (stats.n + stats.sum_y) / 2
    n_neg = stats.n - n_pos
    sum_pos = (stats.sum_x.unsqueeze(1) + stats.cross) / 2  # D x K
    sum_neg = stats.sum_x.unsqueeze(1) - sum_pos
    gap = (w * (sum_pos / n_pos.clamp(min=1) - sum_neg / n_neg.clamp(min=1))).sum(0)
    both = (n_pos > 0) & (n_neg > 0)
    return torch.where(both, gap / spread.clamp(min=1e-12), torch.zeros_like(gap))
