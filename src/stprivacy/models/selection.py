"""Token sparsification as small named functions: score, Gumbel keep, per-slice top-k, gather, scatter back.

Shapes: ``B`` clips, ``L`` temporal slices, ``N`` tokens per slice, ``S = L * N`` tokens (time-major), ``D`` channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stprivacy.errors import KeepRatioError

#: Denominator guard of the masked means: a fully dropped slice gives a zero mean, not NaN.
MASKED_MEAN_EPS = 1e-6


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``x`` (``... x D``) over ``dim`` weighted by ``mask`` (``...``), finite when the mask is all zero."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(dim, keepdim=True) / (m.sum(dim, keepdim=True) + MASKED_MEAN_EPS)


class TokenScorer(nn.Module):
    """Multi-level feature aggregation: per-token, slice-level and clip-level features -> keep/drop log-probs.

    ``h = GELU(Linear(LayerNorm(x)))`` is split along channels into three parts: the first stays per token, the
    second is replaced by its masked mean over the kept tokens of the same temporal slice, the third by its masked
    mean over all kept tokens of the clip. An MLP ``D -> D/2 -> D/4 -> 2`` then gives log-probabilities; channel 0
    is *keep*.
    """

    def __init__(self, dim: int, context: bool = True):
        super().__init__()
        self.context = context
        self.in_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU())
        third = dim // 3
        self.split = (dim - 2 * third, third, third)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, dim // 4), nn.GELU(), nn.Linear(dim // 4, 2)
        )

    def forward(self, x: torch.Tensor, keep: torch.Tensor, slices: int) -> torch.Tensor:
        """``x``: B x S x D, ``keep``: B x S (1 = kept so far) -> B x S x 2 log-probabilities."""
        b, s, _ = x.shape
        h = self.in_proj(x)
        if not self.context:  # each token judged by its own features alone
            return F.log_softmax(self.mlp(h), dim=-1)
        local, per_slice, per_clip = h.split(self.split, dim=-1)
        n = s // slices
        slice_mean = masked_mean(per_slice.reshape(b, slices, n, -1), keep.reshape(b, slices, n), dim=2)
        slice_mean = slice_mean.expand(-1, -1, n, -1).reshape(b, s, -1)
        clip_mean = masked_mean(per_clip, keep, dim=1).expand(-1, s, -1)
        return F.log_softmax(self.mlp(torch.cat([local, slice_mean, clip_mean], dim=-1)), dim=-1)


def gumbel_keep(log_probs: torch.Tensor, previous: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Hard straight-through Gumbel-softmax keep decision (B x S), and-ed with the previous decision.

    The forward value is exactly 0 or 1; the gradient is that of the soft sample, so the scorer learns.
    A dropped token stays dropped because the previous mask multiplies the new one.
    """
    return F.gumbel_softmax(log_probs, tau=tau, hard=True)[..., 0] * previous


def topk_keep(log_probs: torch.Tensor, previous: torch.Tensor, slices: int, k: int, tau: float = 1.0
              ) -> torch.Tensor:
    """Training-time top-k selection (B x S): in each slice the ``k`` tokens, among those still kept, with the
    highest Gumbel-perturbed keep log-probability (the noise explores, as the Gumbel decision does).

    The forward value is exactly the hard mask; the gradient is that of the keep probability (straight-through),
    so the scorer learns the ranking that inference's top-k uses, at whatever ratio this batch trains."""
    noise = -torch.empty_like(log_probs[..., 0]).exponential_().log()  # Gumbel(0, 1)
    hard = hard_topk(log_probs[..., 0] + noise * tau, previous, slices, k)
    p = log_probs[..., 0].exp()
    return (hard + p - p.detach()) * previous


def hard_topk(score: torch.Tensor, previous: torch.Tensor, slices: int, k: int) -> torch.Tensor:
    """B x S hard keep mask: in each slice the ``k`` highest ``score``s (B x S) among the tokens ``previous``
    still keeps."""
    b, s = previous.shape
    score = score.masked_fill(previous == 0, float("-inf"))
    idx = score.reshape(b, slices, -1).topk(k, dim=-1).indices
    return torch.zeros_like(score).reshape(b, slices, -1).scatter_(-1, idx, 1.0).reshape(b, s)


def motion_prior(videos: torch.Tensor, tubelet: tuple[int, int, int], chunk: int = 256) -> torch.Tensor:
    """``model.selection: prior``'s ranking from training clips alone, no label: the mean absolute frame-to-frame
    change at every tubelet position (``N x 3 x T x H x W`` videos, uint8 or float in [0, 1]) -> L x N, L = T / t
    slices of N = (H / p) x (W / p) positions."""
    n, _, frames, h, w = videos.shape
    t, ph, pw = tubelet
    total = torch.zeros(frames // t, h // ph, w // pw)
    for start in range(0, n, chunk):
        v = videos[start:start + chunk].float() / (255.0 if videos.dtype == torch.uint8 else 1.0)
        change = (v[:, :, 1:] - v[:, :, :-1]).abs().mean(1)
        change = torch.cat([change, change[:, -1:]], dim=1)  # the last frame keeps the last change
        total += change.reshape(len(v), frames // t, t, h // ph, ph, w // pw, pw).mean(dim=(2, 4, 6)).sum(0)
    return (total / n).reshape(frames // t, -1)


def tokens_to_keep(tokens_per_slice: int, keep_ratio: float, stage: int) -> int:
    """``k = int(N * a^m)`` for stage ``m`` (1-based); raises if no token would be left in a slice."""
    k = int(tokens_per_slice * keep_ratio**stage)
    if k < 1:
        raise KeepRatioError(
            f"keep ratio {keep_ratio} keeps no token of {tokens_per_slice} per slice at selection stage {stage} "
            f"(N * a^{stage} = {tokens_per_slice * keep_ratio**stage:.3f} < 1); use a larger keep ratio"
        )
    return k


def topk_per_slice(keep_score: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B x L x k, ascending) of the ``k`` highest scores in each slice of ``keep_score`` (B x L x n)."""
    idx = keep_score.topk(k, dim=-1).indices
    return idx.sort(dim=-1).values


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x``: B x L x n x D, ``index``: B x L x k -> B x L x k x D."""
    return x.gather(2, index.unsqueeze(-1).expand(-1, -1, -1, x.shape[-1]))


def scatter_tokens(values: torch.Tensor, index: torch.Tensor, tokens_per_slice: int) -> torch.Tensor:
    """Put ``values`` (B x L x k x C) back at ``index`` (B x L x k) of zeros B x L x N x C.

    Written as a product with a one-hot matrix (exact: each output is one value times 1 plus zeros) so that every
    shape follows the inputs; traced exports then keep a dynamic batch axis.
    """
    placement = F.one_hot(index, tokens_per_slice).to(values.dtype)  # B x L x k x N
    return placement.transpose(-1, -2) @ values


def mask_from_index(index: torch.Tensor, tokens_per_slice: int) -> torch.Tensor:
    """B x L x k indices -> B x L x N float keep mask."""
    return F.one_hot(index, tokens_per_slice).sum(-2).float()
