"""Phase 2's ``privacy_match``: an attacker-free privacy term on the appearance features of the output video.

A fresh attacker that reads the attributes back is a per-frame CNN trained to convergence on the published
output. The co-trained privacy recognizer is a poor stand-in for it: one learner, a step behind the anonymizer,
easy to fool while the information stays in the output (docs/results/recipe_study.md). ``privacy_match`` asks
instead that the output look the same, in distribution, for the clips with and without each attribute
(:func:`stprivacy.losses.attribute_discrepancy`), measured on the features of a per-frame CNN with random weights:
the mean and max of every channel of every layer, which read colours, textures and small parts.

Two choices keep it honest and stable:
* the random CNN is redrawn every ``redraw_every`` batches, so the anonymizer cannot hide an attribute from one
  fixed feature map, only from the family of random ones;
* one batch (16 clips) is too few to compare group means, so the discrepancy also counts the detached features of
  the last ``queue`` clips computed with the same weights (the queue empties when the weights change).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stprivacy.losses import attribute_discrepancy
from stprivacy.models.vit import IMAGENET_MEAN, IMAGENET_STD


def draw_weights(widths: tuple[int, ...], generator: torch.Generator, in_chans: int = 3) -> list[torch.Tensor]:
    """He-initialised 3 x 3 kernels of a conv-ReLU stack with the given widths (on the CPU, from ``generator``)."""
    weights, c = [], in_chans
    for w in widths:
        weights.append(torch.randn(w, c, 3, 3, generator=generator) * math.sqrt(2.0 / (9 * c)))
        c = w
    return weights


def random_frame_features(video: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """``B x 3 x T x H x W`` video in [0, 1] -> ``B x 2 sum(widths)``: per layer (stride 2), the spatial mean and max
    of every channel, averaged over frames."""
    if video.dim() != 5 or video.shape[1] != 3:
        raise ValueError(f"expected B x 3 x T x H x W, got {tuple(video.shape)}")
    b, c, t, h, w = video.shape
    x = video.transpose(1, 2).reshape(b * t, c, h, w).float()
    mean = x.new_tensor(IMAGENET_MEAN).view(1, -1, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, -1, 1, 1)
    x = (x - mean) / std
    feats = []
    for weight in weights:
        x = F.relu(F.conv2d(x, weight.to(x.device), stride=2, padding=1))
        feats += [x.mean(dim=(2, 3)), x.amax(dim=(2, 3))]
    return torch.cat(feats, dim=1).reshape(b, t, -1).mean(dim=1)


class AppearanceMatch:
    """The ``privacy_match`` term with its random CNN and its queue of recent features; :meth:`reset` at every
    epoch start (seeded by the epoch, so a resumed phase 2 draws the same weights)."""

    def __init__(self, widths: tuple[int, ...], queue: int = 128, redraw_every: int = 50):
        self.widths, self.queue_size, self.redraw_every = tuple(widths), queue, redraw_every
        self.reset(0)

    def reset(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self._redraw()

    def _redraw(self) -> None:
        self.weights = draw_weights(self.widths, self.generator)
        self.steps = 0
        self.queue: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, video: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        if self.steps >= self.redraw_every:
            self._redraw()
        self.steps += 1
        feats = random_frame_features(video, self.weights)
        past = [f for f, _ in self.queue]
        past_z = [z for _, z in self.queue]
        loss = attribute_discrepancy(torch.cat([feats, *past]), torch.cat([attributes, *past_z]))
        self.queue = [*self.queue, (feats.detach(), attributes.detach())]
        while sum(len(z) for _, z in self.queue) > self.queue_size:
            self.queue.pop(0)
        return loss
