"""SPAct (Dave et al., CVPR 2022): self-supervised privacy preservation, no privacy labels.

A per-frame UNet anonymizer ``f``, first trained to reconstruct its input, then trained with (see
:mod:`stprivacy.training.baselines`)::

    L_f = CE(A(f(x)), y) - omega * NT-Xent(E(v1), E(v2))

where ``v1``, ``v2`` are two augmented frames of the same anonymized clip and ``E`` a SimCLR-style frame encoder
(a CNN and a projection head) that, in alternate steps, minimises the NT-Xent loss on anonymized frames. Making the
anonymized frames of one clip hard to match removes what identifies the person, without naming any attribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stprivacy.models.baselines.config import SpactConfig
from stprivacy.models.config import FrameAttackerConfig
from stprivacy.models.recognizers import FrameAttacker


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    def conv_bn_relu(c: int) -> list[nn.Module]:
        return [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(*conv_bn_relu(c_in), *conv_bn_relu(c_out))


class UNet(nn.Module):
    """The classic UNet: double convolutions, max-pool down, transposed-convolution up, skip concatenations,
    a sigmoid output in [0, 1] (frames: B x 3 x H x W, H and W divisible by ``2 ** (len(widths) - 1)``)."""

    def __init__(self, widths: tuple[int, ...], in_chans: int = 3):
        super().__init__()
        self.down = nn.ModuleList()
        c = in_chans
        for w in widths:
            self.down.append(_double_conv(c, w))
            c = w
        self.up = nn.ModuleList(nn.ConvTranspose2d(c_in, c_out, 2, stride=2) for c_in, c_out in
                                zip(widths[:0:-1], widths[-2::-1], strict=True))
        self.merge = nn.ModuleList(_double_conv(2 * c_out, c_out) for c_out in widths[-2::-1])
        self.out = nn.Conv2d(widths[0], in_chans, 1)
        self.factor = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, skips[-2::-1], strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return torch.sigmoid(self.out(x))


class SpactTransform(nn.Module):
    """``B x 3 x T x H x W`` video in [0, 1] -> same shape in [0, 1], through the UNet frame by frame."""

    def __init__(self, cfg: SpactConfig | None = None):
        super().__init__()
        cfg = cfg or SpactConfig()
        self.unet = UNet(cfg.widths)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = video.shape
        if h % self.unet.factor or w % self.unet.factor:
            raise ValueError(f"SPAct's UNet needs frame sizes divisible by {self.unet.factor}, got {h}x{w}")
        frames = video.transpose(1, 2).reshape(b * t, c, h, w)
        return self.unet(frames).reshape(b, t, c, h, w).transpose(1, 2)


class ContrastiveEncoder(nn.Module):
    """SimCLR's frame encoder: a CNN backbone and a two-layer projection head; frames B x 3 x H x W -> B x dim."""

    def __init__(self, cfg: SpactConfig, backbone: FrameAttackerConfig):
        super().__init__()
        width = backbone.widths[-1]
        self.backbone = FrameAttacker(width, FrameAttackerConfig(backbone.widths, train_frames=0))
        self.project = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(width, cfg.projection_dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.project(self.backbone(frames.unsqueeze(2)))


def two_views(video: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SPAct's positive pair: two different random frames of each clip, each randomly mirrored and shifted (a
    random crop padded back to size), B x 3 x T x H x W -> two B x 3 x H x W batches."""
    b, _, t, h, w = video.shape
    device = video.device
    first = torch.randint(t, (b,), generator=generator).to(device)
    second = (first + 1 + torch.randint(max(t - 1, 1), (b,), generator=generator).to(device)) % t
    rows = torch.arange(b, device=device)
    frames = video.transpose(1, 2)
    return (_augment(frames[rows, first], generator), _augment(frames[rows, second], generator))


def _augment(frames: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    b, _, h, w = frames.shape
    flip = (torch.rand(b, generator=generator) < 0.5).to(frames.device)
    frames = torch.where(flip.view(b, 1, 1, 1), frames.flip(-1), frames)
    pad = max(1, h // 8)
    dy, dx = torch.randint(2 * pad + 1, (2,), generator=generator).tolist()
    return F.pad(frames, (pad, pad, pad, pad), mode="replicate")[..., dy:dy + h, dx:dx + w]
