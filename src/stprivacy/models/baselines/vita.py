"""VITA (Wu et al., TPAMI 2020): a per-frame image-transform network trained against an action recognizer and an
ensemble of privacy recognizers.

The network follows the image-transformation nets VITA builds on: a wide first convolution, stride-2
convolutions down, residual blocks, transposed convolutions up and a wide last convolution, applied to every frame
independently. Its objective (see :mod:`stprivacy.training.baselines`)::

    L_f = CE(A(f(x)), y) + gamma * max_i ( -H(P_i(f(x))) )

the action loss plus the largest privacy "budget" (negative entropy: the most confident privacy model) over the
ensemble, which is re-initialised every ``restart_every`` epochs ("model restarting").
"""

from __future__ import annotations

import torch
from torch import nn

from stprivacy.models.baselines.config import VitaConfig


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), nn.InstanceNorm2d(c_out, affine=True),
            nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(*_conv(c, c, 3), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.InstanceNorm2d(c, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VitaTransform(nn.Module):
    """``B x 3 x T x H x W`` video in [0, 1] -> same shape in [0, 1], frame by frame (H, W divisible by
    ``2 ** (len(widths) - 1)``)."""

    def __init__(self, cfg: VitaConfig | None = None):
        super().__init__()
        cfg = cfg or VitaConfig()
        w = cfg.widths
        layers: list[nn.Module] = _conv(3, w[0], 7)
        for c_in, c_out in zip(w[:-1], w[1:], strict=True):
            layers += _conv(c_in, c_out, 3, stride=2)
        layers += [ResidualBlock(w[-1]) for _ in range(cfg.residual_blocks)]
        for c_in, c_out in zip(w[:0:-1], w[-2::-1], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=False),
                       nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(inplace=True)]
        last = nn.Conv2d(w[0], 3, 7, padding=3)
        # VITA starts from a transform pre-trained to the identity; a residual around the whole net with a
        # zero last convolution *is* the identity at step 0, without the pre-training epochs.
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.factor = 2 ** (len(w) - 1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = video.shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"VITA needs frame sizes divisible by {self.factor}, got {h}x{w}")
        frames = video.transpose(1, 2).reshape(b * t, c, h, w)
        out = (frames + self.net(frames * 2 - 1)).clamp(0, 1)
        return out.reshape(b, t, c, h, w).transpose(1, 2)
