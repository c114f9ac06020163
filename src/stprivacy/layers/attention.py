"""Multi-head self-attention with the STPrivacy keep-mask semantics.

With keep mask ``p`` (1 = kept), token ``i`` may attend to token ``j`` only if ``p_j = 1`` or ``i = j``: dropped
tokens are never keys for anybody else, so they cannot influence kept tokens, while each dropped token still has
itself to attend to (its row is never empty).

Two execution paths, same maths:

* mask without gradient (inference with a given mask, evaluation): ``scaled_dot_product_attention`` with a boolean
  mask, the fast fused kernel;
* mask that carries gradient (straight-through Gumbel decisions in training): the weights are written out as
  ``w_ij = m_ij exp(s_ij) / sum_k m_ik exp(s_ik)`` (DynamicViT's formulation) so that the scorer receives a gradient
  through every attention layer. A boolean mask has no gradient, and an additive ``log m`` would have an infinite one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention_allowed(keep: torch.Tensor) -> torch.Tensor:
    """``B x S`` keep mask (0/1, float or bool) -> ``B x 1 x S x S`` weights: ``keep_j`` or ``i == j``."""
    keep = keep.to(torch.float32) if keep.dtype == torch.bool else keep
    s = keep.shape[-1]
    eye = torch.eye(s, device=keep.device, dtype=keep.dtype)
    allowed = keep[:, None, :] * (1 - eye) + eye  # B x S(query) x S(key)
    return allowed[:, None]


class MaskedAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: B x S x D; ``keep``: optional B x S keep mask (1 = kept)."""
        b, s, d = x.shape
        q, k, v = self.qkv(x).reshape(b, s, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if keep is None:
            out = F.scaled_dot_product_attention(q, k, v)
        elif keep.requires_grad:
            out = _weighted_softmax_attention(q, k, v, attention_allowed(keep).to(q.dtype))
        else:
            allowed = attention_allowed(keep) > 0.5
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.proj(out.transpose(1, 2).reshape(b, s, d))


def _weighted_softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor
) -> torch.Tensor:
    """Attention whose weights are multiplied by a differentiable mask before normalisation."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    # Shift by the largest *allowed* score: shifting by a forbidden one can underflow every allowed weight to zero
    # (0 / 0 = NaN). With this shift the largest allowed weight is exp(0) = 1, so the denominator is >= 1.
    # Forbidden scores may lie far above the shift. Capping them at the shift keeps exp finite (inf * 0 = NaN) and
    # bounds the mask's gradient: a dropped key counts at most as much as the best kept one, as in DynamicViT where
    # every exp is <= 1. Allowed entries (all <= 0 after the shift) are untouched, so the forward value is exact.
    shift = scores.masked_fill(allowed <= 0, torch.finfo(scores.dtype).min).amax(dim=-1, keepdim=True).detach()
    weights = (scores - shift).clamp(max=0.0).exp() * allowed
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights @ v
