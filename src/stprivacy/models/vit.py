"""The plain video ViT trunk shared by the anonymizer and the recognizers: tubelets, positions, blocks."""

from __future__ import annotations

import torch
from torch import nn

from stprivacy.layers import Block, TubeletEmbed
from stprivacy.models.config import ModelConfig

#: Every model takes videos in [0, 1] and standardises them itself with the ImageNet statistics, so that
#: inflated ImageNet weights see what they were trained on. From scratch, standardising mattered too: on the
#: synthetic benchmark an unstandardised ViT sat at chance for 4 epochs where the standardised one reached 30-80 %.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Standardize(nn.Module):
    """``(video - mean) / std`` per channel, for ``B x 3 x T x H x W`` or ``B x 3 x H x W`` inputs."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape).to(x.dtype)) / self.std.view(shape).to(x.dtype)


def init_vit_weights(module: nn.Module) -> None:
    """ViT initialisation: truncated normal (std 0.02) for linear layers, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class VideoViT(nn.Module):
    """Tubelet embedding + learnable position embedding over all tokens (no CLS token) + pre-norm blocks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.grid
        self.embed = TubeletEmbed(self.grid, cfg.embed_dim, IMAGENET_MEAN, IMAGENET_STD)  # standardises too
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid.num_tokens, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def tokens(self, video: torch.Tensor) -> torch.Tensor:
        """``B x 3 x T x H x W`` video in [0, 1] -> position-embedded tokens ``B x S x D``."""
        self.grid.check_video(video)
        return self.embed(video) + self.pos_embed

    def run_blocks(self, x: torch.Tensor, keep: torch.Tensor | None = None, start: int = 0,
                   stop: int | None = None) -> torch.Tensor:
        """Blocks ``start .. stop - 1`` over ``x`` (B x S x D), with masked attention when ``keep`` (B x S) is
        given; the one block loop of every model."""
        for block in self.blocks[start:stop]:
            x = block(x, keep)
        return x

    def segments(self, points: tuple[int, ...]) -> list[tuple[int, int]]:
        """The block ranges between selection ``points``: before the first, then one range per selection."""
        bounds = [0, *points, len(self.blocks)]
        return list(zip(bounds[:-1], bounds[1:], strict=True))

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}
