"""Action recognizers and privacy attackers.

* :class:`VideoRecognizer`: a video-level ViT (no CLS token, mean pooling) over the anonymized video, optionally
  with the keep mask that travels with it. Used for actions (softmax logits) and private attributes (one logit per
  attribute, multi-label sigmoid).
* :class:`FrameAttacker`: a per-frame 2D CNN whose frame logits are averaged over time, the attacker family of the
  earlier frame-based methods. On raw synthetic clips it reads appearance far better than a small ViT, so an
  evaluation without it would overstate privacy.
* :class:`CellLinearAttacker`: a linear map of every frame's cell means, frame logits averaged over time: phase
  3's ridge attacker (the strongest reader of the anonymized synthetic output) as a family phase 2 can train
  alongside the anonymizer.
* :class:`KeepPatternAttacker`: an MLP on the keep mask alone (which tubelets a published video shows), phase 1's
  ``phase1_pattern_adversary``: on the synthetic benchmark the pattern by itself tells the private attributes.
"""

from __future__ import annotations

import torch
from torch import nn

from stprivacy.layers.cells import cell_mean_features
from stprivacy.models.config import TRAINED_ATTACKERS, FrameAttackerConfig, ModelConfig
from stprivacy.models.selection import masked_mean
from stprivacy.models.vit import Standardize, VideoViT, init_vit_weights


def build_attacker(kind: str, recognizer: ModelConfig, frame: FrameAttackerConfig, num_outputs: int) -> nn.Module:
    """A fresh privacy attacker of family ``kind``: "vit" (video-level, ImageNet-initialised when the recognizer
    config names weights), "frame" (per-frame CNN) or "linear" (per-frame cell means, one linear map)."""
    if kind == "vit":
        from stprivacy.models.pretrained import with_pretrained

        return with_pretrained(VideoRecognizer(recognizer, num_outputs))
    if kind == "frame":
        return FrameAttacker(num_outputs, frame)
    if kind == "linear":
        return CellLinearAttacker(num_outputs, frame.linear_cells)
    raise ValueError(f"unknown attacker {kind!r}; choose from {TRAINED_ATTACKERS}")


class AttackerEnsemble(nn.ModuleList):
    """``members`` fresh privacy attackers of each family in ``kinds``, re-initialisable in place (the privacy
    restarts of phase 2 and VITA)."""

    def __init__(self, kinds: tuple[str, ...], members: int, recognizer: ModelConfig, frame: FrameAttackerConfig,
                 num_outputs: int):
        super().__init__()
        self._spec = (tuple(kinds), members, recognizer, frame, num_outputs)
        self.extend(self._fresh())

    def _fresh(self) -> list[nn.Module]:
        kinds, members, recognizer, frame, n = self._spec
        return [build_attacker(kind, recognizer, frame, n) for kind in kinds for _ in range(members)]

    def restart(self) -> None:
        device = next(self.parameters()).device
        for model, fresh in zip(self, self._fresh(), strict=True):
            model.load_state_dict(fresh.to(device).state_dict())


def is_topk_mask(keep: torch.Tensor) -> bool:
    """True when ``keep`` (B x L x N) has no gradient and the same, non-zero number of kept tokens in every slice.
    (A batch of published clips that are black everywhere keeps nothing: gathering no token would leave an empty
    mean, NaN, so it goes the masked way, where every token sees itself only and the masked mean is finite.)"""
    if keep.requires_grad:
        return False
    counts = keep.sum(-1)
    first = counts.flatten()[0]
    return bool(first > 0) and bool((counts == first).all()) and bool(((keep == 0) | (keep == 1)).all())


class VideoRecognizer(nn.Module):
    def __init__(self, cfg: ModelConfig, num_outputs: int):
        super().__init__()
        self.cfg = cfg
        self.vit = VideoViT(cfg)
        self.head = nn.Linear(cfg.embed_dim, num_outputs)
        self.apply(init_vit_weights)

    def no_weight_decay(self) -> set[str]:
        return {"vit.pos_embed"}

    def forward(self, video: torch.Tensor, keep_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``video``: B x 3 x T x H x W; ``keep_mask``: optional B x L x N (1 = kept) -> B x outputs logits.

        A top-k mask (equal counts, no gradient) is applied by keeping only the kept tokens, which is cheaper;
        any other mask (Gumbel decisions, possibly carrying gradient) by masked attention and a masked mean.
        Both give the same result for the same hard mask.
        """
        x = self.vit.tokens(video)
        b, s, d = x.shape
        if keep_mask is not None:
            grid = self.vit.grid
            if tuple(keep_mask.shape) != (b, grid.slices, grid.tokens_per_slice):
                raise ValueError(
                    f"keep mask must be B x {grid.slices} x {grid.tokens_per_slice}, got {tuple(keep_mask.shape)}"
                )
            if is_topk_mask(keep_mask):  # keep only the kept tokens, then it is the unmasked case
                keep_idx = keep_mask.reshape(b, s).nonzero()[:, 1].reshape(b, -1)
                x = x.gather(1, keep_idx.unsqueeze(-1).expand(-1, -1, d))
                keep_mask = None
        if keep_mask is None:
            return self.head(self.vit.norm(self.vit.run_blocks(x)).mean(dim=1))
        keep = keep_mask.reshape(b, s).to(x.dtype)
        return self.head(masked_mean(self.vit.norm(self.vit.run_blocks(x, keep)), keep, dim=1).squeeze(1))


class FrameAttacker(nn.Module):
    """Per-frame CNN (conv-BN-ReLU, stride 2 per stage) -> frame logits -> mean over time."""

    def __init__(self, num_outputs: int, cfg: FrameAttackerConfig | None = None, in_chans: int = 3):
        super().__init__()
        cfg = cfg or FrameAttackerConfig()
        self.standardize = Standardize()
        layers: list[nn.Module] = []
        c = in_chans
        for w in cfg.widths:
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, num_outputs)
        self.train_frames = cfg.train_frames

    def forward(self, video: torch.Tensor, keep_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``video``: B x 3 x T x H x W -> B x outputs. The keep mask is ignored: frames show what was kept."""
        if video.dim() != 5:
            raise ValueError(f"expected B x 3 x T x H x W, got {tuple(video.shape)}")
        if self.training and 0 < self.train_frames < video.shape[2]:
            pick = torch.randperm(video.shape[2], device=video.device)[: self.train_frames]
            video = video[:, :, pick]
        b, c, t, h, w = video.shape
        frames = self.standardize(video.transpose(1, 2).reshape(b * t, c, h, w))
        return self.head(self.features(frames)).reshape(b, t, -1).mean(dim=1)


class CellLinearAttacker(nn.Module):
    """Per frame: means over a ``cells`` x ``cells`` grid -> one linear map -> frame logits; mean over time.

    The same readout as phase 3's closed-form ridge (:mod:`stprivacy.evaluation.ridge`), learnt by gradient steps
    so that it can follow the anonymizer in phase 2's min-max. A linear attacker has no adversarial examples
    beyond moving the signal: fooling it means removing the attribute from the cell means (or hiding it in
    directions it has not yet learnt)."""

    def __init__(self, num_outputs: int, cells: int = 16, in_chans: int = 3):
        super().__init__()
        self.cells = cells
        self.head = nn.Linear(in_chans * cells * cells, num_outputs)
        nn.init.zeros_(self.head.weight)  # a fresh linear attacker starts at chance, not at a random guess
        nn.init.zeros_(self.head.bias)

    def forward(self, video: torch.Tensor, keep_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``video``: B x 3 x T x H x W -> B x outputs. The keep mask is ignored: frames show what was kept."""
        if video.dim() != 5:
            raise ValueError(f"expected B x 3 x T x H x W, got {tuple(video.shape)}")
        return self.head(cell_mean_features(video, self.cells).to(self.head.weight.dtype)).mean(dim=1)


class KeepPatternAttacker(nn.Module):
    """Private attributes from the keep mask alone: ``B x L x N`` (0 / 1, or a straight-through mask) -> B x K.

    The selector decides which tubelets a published video shows, and that pattern reads like a silhouette: a
    fresh attacker that sees nothing but the grey kept tubelets read the attributes of the synthetic benchmark at
    62 % cMAP with action at chance (docs/results/recipe_study.md). The pattern has ``L * N`` bits, so a small
    MLP sees all an attacker of any family can get from it."""

    def __init__(self, slices: int, tokens_per_slice: int, num_outputs: int, hidden: int = 256):
        super().__init__()
        self.shape = (slices, tokens_per_slice)
        self.mlp = nn.Sequential(nn.Linear(slices * tokens_per_slice, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, num_outputs))

    def forward(self, keep_mask: torch.Tensor) -> torch.Tensor:
        if tuple(keep_mask.shape[1:]) != self.shape:
            raise ValueError(f"keep mask must be B x {self.shape[0]} x {self.shape[1]}, got {tuple(keep_mask.shape)}")
        return self.mlp(keep_mask.flatten(1).float())
