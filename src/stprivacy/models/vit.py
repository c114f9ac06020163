"""The plain video ViT trunk shared by the anonymizer and the recognizers: tubelets, positions, blocks."""

from __future__ import annotations

import torch
from torch import nn

from stprivacy.layers import Block, TubeletEmbed
from stprivacy.models.config import ModelConfig


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
        self.embed = TubeletEmbed(self.grid, cfg.embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid.num_tokens, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def tokens(self, video: torch.Tensor) -> torch.Tensor:
        """``B x 3 x T x H x W`` -> position-embedded tokens ``B x S x D``."""
        self.grid.check_video(video)
        return self.embed(video) + self.pos_embed

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}
