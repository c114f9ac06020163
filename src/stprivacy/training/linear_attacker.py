"""Phase 2's ``privacy_ridge``: a linear attacker fitted in closed form on recent outputs, in the loop.

Why (docs/results/recipe_study.md, 2026-12-04, sixth session): the co-trained privacy recognizers are learners
of 50-100 batches on an output that never stands still, while phase 3's attackers train for hundreds of batches on
the final output; the catch-up instrument showed that *any* recognizer needs that long to read the anonymizer's
code. On the
synth-quick preset's published output a ridge regression on each frame's 4 x 4 block means (the same weights for
every frame, the clip's score the mean over frames) reads the attributes as well as the fresh frame CNN does
(skin 63, nudity 63, gender 61 AP on seed 0; the CNN 65, 63, 57). A ridge regression has no training horizon: it
is solved exactly on whatever output it is given. So the anonymizer faces, at every step, the best linear reader
of its recent outputs.

Each anonymizer step:

1. the ridge weights are solved from the Gram statistics of the last ``buffer`` batches' detached features (not
   the current batch: the reading is out of sample, as an attacker's is);
2. the loss is the mean over attributes of the squared correlation, over the current batch's frames, between
   that ridge's score and the attribute; its gradient reaches the anonymizer through the features;
3. the current batch's statistics join the buffer (the oldest leave).

The Gram statistics are kept per batch so that the buffer slides without refitting anything old; the solve is one
``D x D`` system (D = 3 * (H/k) * (W/k): 768 at 64 x 64 and k = 4). In a distributed run each process keeps its
own buffer; the gradients are averaged as usual.
"""

from __future__ import annotations

from collections import deque

import torch

from stprivacy.evaluation.leakage import block_mean_features

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

    def __init__(self, block: int = 4, buffer: int = 32, alpha: float = 1.0, min_batches: int = 8):
        if block < 1 or buffer < 1 or alpha <= 0 or not 1 <= min_batches <= buffer:
            raise ValueError("ridge attacker: block, buffer >= 1, alpha > 0, 1 <= min_batches <= buffer")
        self.block, self.alpha, self.min_batches = block, alpha, min_batches
        self.stats: deque[tuple[torch.Tensor, ...]] = deque(maxlen=buffer)

    def reset(self) -> None:
        self.stats.clear()

    def weights(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The ridge solution on the buffer: ``D x K`` weights and the ``D`` feature mean (None while fewer than
        ``min_batches`` batches are buffered). The penalty is ``alpha`` times the mean feature variance, so that
        ``alpha`` means the same at any pixel scale."""
        if len(self.stats) < self.min_batches:
            return None
        n = sum(s[0] for s in self.stats)
        sx = sum(s[1] for s in self.stats)
        sy = sum(s[2] for s in self.stats)
        gram = sum(s[3] for s in self.stats)
        cross = sum(s[4] for s in self.stats)
        mu, mu_y = sx / n, sy / n
        gram_c = gram - n * torch.outer(mu, mu)
        cross_c = cross - n * torch.outer(mu, mu_y)
        d = gram_c.shape[0]
        ridge = self.alpha * gram_c.diagonal().mean().clamp(min=1e-12)
        w = torch.linalg.solve(gram_c + ridge * torch.eye(d, dtype=gram_c.dtype, device=gram_c.device), cross_c)
        return w, mu

    def __call__(self, video: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        feats = block_mean_features(video, self.block)  # B x T x D
        b, t, d = feats.shape
        x = feats.reshape(b * t, d)
        y = attributes.float().repeat_interleave(t, dim=0)  # every frame carries its clip's attributes
        fitted = self.weights()
        if fitted is None:
            loss = x.sum() * 0.0  # keeps the graph (and the device) without a gradient
        else:
            w, mu = fitted
            loss = squared_correlation((x - mu.to(x.dtype)) @ w.to(x.dtype), y).mean()
        xd = x.detach().double()
        self.stats.append((len(xd), xd.sum(0), y.double().sum(0), xd.T @ xd, xd.T @ y.double()))
        return loss
