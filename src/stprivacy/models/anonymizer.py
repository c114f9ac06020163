"""The STPrivacy anonymizer: privacy sparsification blocks (PSB) then privacy anonymization blocks (PAB).

Where this deviates from, or fills gaps in, the paper (METHOD.md sections 2 and 3):

* Selections happen before blocks ``selection_points`` (default 3, 6, 9 of 12). Blocks before the first selection
  see every token, so they can carry a dropped tubelet's content into kept ones; a first selection at 0 scores the
  tubelet embeddings themselves (tried on the synthetic benchmark: it costs the head, see
  ``docs/results/recipe_study.md``).
* ``pre_selection_attention`` (an option) limits the blocks before the first selection ("temporal"), or every
  block up to the last one ("temporal-until-last"), to attention along time at each spatial position, so that no
  content moves between positions before the selector decides. In inference those blocks run on the full token
  grid with the keep mask (scatter, masked blocks, gather), the rest on the gathered tokens.
* In training the sequence keeps its length and the hard Gumbel mask does the dropping (masked attention); the
  decoded video is multiplied by the final mask, so a training-mode output never shows a dropped tubelet either.
* In inference, each slice keeps its ``int(N * a^m)`` best-scored tokens, which are really gathered, so the cost
  falls with ``a``. The keep ratio is an argument of :meth:`STPrivacy.anonymize`.
* ``output_block`` > 1 (an option) decodes each tubelet at a coarser resolution, so that the published output has
  no fine pattern to hide an attribute in.
* ``output_rank`` > 0 (an option) paints each tubelet as a combination of that many learned pixel patterns.
* ``temporal_residual`` (an option) publishes each kept tubelet as grey plus its change from the mean of the kept
  tubelets at its position over the clip (:meth:`STPrivacy.publish_changes`).
* ``erasers`` (fitted after phase 2 when ``train.linear_erasure`` is on, :mod:`stprivacy.models.erasure`) map
  each published clip's decoder coefficients so that no linear reader tells its attributes; one per set of keep
  counts, applied at the ratios they serve (in training too when phase 2 refits them).
* Masked means in the token scorer carry an epsilon: a fully dropped slice gives finite scores (the released code
  gives NaN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from stprivacy.layers import temporal_residual, tubelets_to_video
from stprivacy.models.config import ModelConfig, model_preset, validate_keep_ratio
from stprivacy.models.erasure import LinearEraser, eraser_key
from stprivacy.models.selection import (
    TokenScorer,
    gather_tokens,
    gumbel_keep,
    hard_topk,
    mask_from_index,
    masked_mean,
    scatter_tokens,
    tokens_to_keep,
    topk_keep,
    topk_per_slice,
)
from stprivacy.models.vit import VideoViT, init_vit_weights


@dataclass
class AnonymizerOutput:
    """What the anonymizer returns, in training and in inference alike."""

    #: B x 3 x T x H x W anonymized video; dropped tubelets are exactly zero.
    video: torch.Tensor
    #: B x L x N final keep mask (1 = kept).
    keep_mask: torch.Tensor
    #: One B x L x N keep mask per selection stage (cumulative: a dropped token stays dropped).
    decisions: list[torch.Tensor]
    #: B x classes action logits of the phase-1 head, or None when the model has no action head.
    action_logits: torch.Tensor | None = None
    #: Training mode: one B x L x N tensor per selection stage, the scorer's keep logit (log p_keep - log p_drop)
    #: of every token given the earlier stages' decisions, also when those decisions were given
    #: (``stage_masks``). Empty in inference.
    keep_logits: list[torch.Tensor] = field(default_factory=list)


class ActionHead(nn.Module):
    """Masked mean over the kept tokens' features, then a linear classifier (phase 1)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, feats: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.fc(masked_mean(feats, keep, dim=1).squeeze(1))


class STPrivacy(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.grid
        self.vit = VideoViT(cfg)
        self.scorers = nn.ModuleList(TokenScorer(cfg.embed_dim, cfg.scorer_context) for _ in cfg.selection_points)
        numel = self.grid.tubelet_numel // cfg.output_block**2
        if cfg.output_rank:  # a rank-limited decoder: features -> r coefficients -> r learned pixel patterns
            self.to_pixels = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.output_rank), nn.Linear(cfg.output_rank, numel))
        else:
            self.to_pixels = nn.Linear(cfg.embed_dim, numel)
        self.action_head = ActionHead(cfg.embed_dim, num_classes) if num_classes else None
        self.apply(init_vit_weights)
        if cfg.selection == "prior":  # one score per position (L x N), set from training clips before phase 1
            self.register_buffer("keep_prior", torch.zeros(self.grid.slices, self.grid.tokens_per_slice))
        #: linear erasers of the published coefficients, by keep counts (empty unless fitted after phase 2)
        self.erasers = nn.ModuleDict()

    @classmethod
    def from_preset(cls, name: str, num_classes: int | None = None, **overrides) -> STPrivacy:
        """Build an anonymizer from a named preset (``vit-s``, ``vit-t``, ``synth``, ``tiny``)."""
        return cls(model_preset(name).with_(**overrides), num_classes=num_classes)

    def stage_ratios(self, keep_ratio: float | None = None) -> list[float]:
        a = self.cfg.keep_ratio if keep_ratio is None else keep_ratio
        return [a ** (m + 1) for m in range(len(self.cfg.selection_points))]

    def decode(self, feats: torch.Tensor) -> torch.Tensor:
        """``... x S x D`` token features -> ``... x S x (C*t*p*p)`` tubelet pixels (the layout of
        :func:`~stprivacy.layers.video_to_tubelets`), each ``output_block`` x ``output_block`` block one value."""
        k = self.cfg.output_block
        pixels = self.to_pixels(feats)
        if k == 1:
            return pixels
        c, (t, ph, pw) = self.grid.channels, self.grid.tubelet
        lead = pixels.shape[:-1]
        blocks = pixels.reshape(*lead, c, t, ph // k, 1, pw // k, 1)
        return blocks.expand(*lead, c, t, ph // k, k, pw // k, k).reshape(*lead, -1)

    def publish_changes(self, pixels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``B x S x P`` decoded tubelets (dropped ones zero) and their ``B x S`` keep mask -> with
        ``temporal_residual``, grey plus each kept tubelet's change from its position's mean over the clip
        (:func:`~stprivacy.layers.tubelets.temporal_residual`); else unchanged."""
        if not self.cfg.temporal_residual:
            return pixels
        return temporal_residual(pixels, keep.reshape(-1, self.grid.slices, self.grid.tokens_per_slice))

    def keep_counts(self, keep_ratio: float) -> list[int]:
        """Tokens kept per slice after each selection stage at keep ratio ``keep_ratio`` (inference)."""
        a = validate_keep_ratio(keep_ratio)
        return [tokens_to_keep(self.grid.tokens_per_slice, a, m + 1) for m in range(len(self.scorers))]

    def set_eraser(self, keep_ratio: float, eraser: LinearEraser) -> None:
        """Publish through ``eraser`` at ``keep_ratio`` and at every ratio with the same keep counts."""
        self.erasers[eraser_key(self.keep_counts(keep_ratio))] = eraser

    def eraser_ratios(self) -> list[float]:
        """The keep ratios the erasers were fitted at."""
        return sorted(round(float(e.keep_ratio), 6) for e in self.erasers.values())

    def erases_at(self, keep_ratio: float) -> bool:
        """Whether one of the erasers serves ``keep_ratio`` (its keep counts)."""
        return eraser_key(self.keep_counts(keep_ratio)) in self.erasers

    def publishes_noise(self) -> bool:
        """Whether some eraser adds fresh noise to what it publishes (``train.erasure_noise``)."""
        return any(bool(e.noise.any()) for e in self.erasers.values())

    def erase(self, tubelets: torch.Tensor, keep_mask: torch.Tensor, keep_ratio: float) -> torch.Tensor:
        """``B x S x P`` decoded tubelets through the eraser of ``keep_ratio``; unchanged where none serves it
        (``train.erasure_keep_ratios`` says which ratios get one; the pipeline warns about the others)."""
        if not len(self.erasers):  # the common case, and every training step of a run without erasers
            return tubelets
        eraser = self.erasers[key] if (key := eraser_key(self.keep_counts(keep_ratio))) in self.erasers else None
        return tubelets if eraser is None else eraser(tubelets, keep_mask.reshape(tubelets.shape[0], -1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # saved erasers exist only after fitting: build empty ones of the saved shapes to load into
        head = f"{prefix}erasers."
        # sorted: the erasers are built in the same order whatever the hash seed (a set's order is not)
        for name in sorted({k[len(head):].split(".")[0] for k in state_dict if k.startswith(head)}):
            basis, left = state_dict.get(f"{head}{name}.basis"), state_dict.get(f"{head}{name}.left")
            hidden = state_dict.get(f"{head}{name}.guard.net.0.bias")  # a second-order guard's hidden layer
            if basis is not None and left is not None and name not in self.erasers:
                self.erasers[name] = LinearEraser.empty(*basis.shape, *left.shape,  # left: live x directions
                                                        0 if hidden is None else len(hidden))
            if left is not None:  # saved before erasers could add noise: they add none
                state_dict.setdefault(f"{head}{name}.noise", torch.zeros(len(left), dtype=torch.float64))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def no_weight_decay(self) -> set[str]:
        return {"vit.pos_embed"}

    def set_selection_trainable(self, trainable: bool) -> None:
        """Start or stop training everything that decides which tubelets are kept: the embedding, the blocks up to
        the last selection, the scorers. What follows the last selection (the anonymization blocks, the decoder)
        is left as it is."""
        last = self.cfg.selection_points[-1] if self.cfg.selection_points else 0
        for part in (self.vit.embed, *self.vit.blocks[:last], self.scorers):
            part.requires_grad_(trainable)
        self.vit.pos_embed.requires_grad_(trainable)

    # ------------------------------------------------------------------ training-mode (masked) forward
    def forward(self, video: torch.Tensor, stage_masks: list[torch.Tensor] | None = None,
                keep_ratio: float | None = None) -> AnonymizerOutput:
        """Training mode: the configured training selection at ``keep_ratio`` (default: the config's), or the given
        ``stage_masks``; eval mode: top-k at that ratio."""
        a = self.cfg.keep_ratio if keep_ratio is None else keep_ratio
        if not self.training and stage_masks is None:
            return self._forward_topk(video, a)
        return self._forward_masked(video, stage_masks, a)

    def _temporal_segments(self) -> int:
        """How many leading block segments (before the first selection, then between selections) attend only
        along time per position: 0 (global), 1 ("temporal") or every one up to the last selection."""
        mode = self.cfg.pre_selection_attention
        if mode == "global":
            return 0
        return 1 if mode == "temporal" else len(self.cfg.selection_points)

    def _run_segment(self, x: torch.Tensor, keep: torch.Tensor | None, blocks: tuple[int, int], temporal: bool
                     ) -> torch.Tensor:
        """Blocks over the full token grid (B x S x D), every token attending to every kept one (global) or
        only to the kept tokens at its own spatial position in the other slices (temporal)."""
        if not temporal:
            return self.vit.run_blocks(x, keep, *blocks)
        b, _, d = x.shape
        slices, n = self.grid.slices, self.grid.tokens_per_slice
        per_position = x.reshape(b, slices, n, d).transpose(1, 2).reshape(b * n, slices, d)
        if keep is not None:
            keep = keep.reshape(b, slices, n).transpose(1, 2).reshape(b * n, slices)
        per_position = self.vit.run_blocks(per_position, keep, *blocks)
        return per_position.reshape(b, n, slices, d).transpose(1, 2).reshape(b, slices * n, d)

    def set_keep_prior(self, prior: torch.Tensor) -> None:
        """``model.selection: prior``: the fixed score of every position (L x N; higher = kept first)."""
        if self.cfg.selection != "prior":
            raise ValueError(f"a keep prior needs model.selection 'prior', not {self.cfg.selection!r}")
        if prior.shape != self.keep_prior.shape:
            raise ValueError(f"expected a {tuple(self.keep_prior.shape)} keep prior, got {tuple(prior.shape)}")
        self.keep_prior.copy_(prior)

    def _stage_log_probs(self, stage: int, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """B x S x 2 keep / drop log-probabilities of one stage: the scorer's, or the fixed prior's."""
        if self.cfg.selection == "prior":
            score = self.keep_prior.reshape(1, -1).to(x.dtype).expand(x.shape[0], -1)
            return torch.stack([F.logsigmoid(score), F.logsigmoid(-score)], dim=-1)
        return self.scorers[stage](x, keep, self.grid.slices)

    def _select(self, stage: int, log_probs: torch.Tensor, keep: torch.Tensor, keep_ratio: float) -> torch.Tensor:
        """One training-time selection stage (B x S keep mask, cumulative) from the stage's log-probabilities."""
        if self.cfg.selection == "gumbel":
            return gumbel_keep(log_probs, keep, self.cfg.gumbel_tau)
        k = tokens_to_keep(self.grid.tokens_per_slice, keep_ratio, stage + 1)
        if self.cfg.selection == "prior":  # deterministic, as in inference: nothing to explore, nothing to learn
            return hard_topk(log_probs[..., 0], keep, self.grid.slices, k) * keep
        return topk_keep(log_probs, keep, self.grid.slices, k, self.cfg.gumbel_tau)

    def _forward_masked(self, video: torch.Tensor, stage_masks: list[torch.Tensor] | None,
                        keep_ratio: float | None = None) -> AnonymizerOutput:
        keep_ratio = self.cfg.keep_ratio if keep_ratio is None else keep_ratio
        grid = self.grid
        x = self.vit.tokens(video)
        b, s, _ = x.shape
        if stage_masks is not None and len(stage_masks) != len(self.scorers):
            raise ValueError(f"expected {len(self.scorers)} stage masks, got {len(stage_masks)}")
        segments = self.vit.segments(self.cfg.selection_points)
        temporal = self._temporal_segments()
        x = self._run_segment(x, None, segments[0], temporal > 0)
        keep = x.new_ones(b, s)
        decisions: list[torch.Tensor] = []
        keep_logits: list[torch.Tensor] = []
        for stage, blocks in enumerate(segments[1:]):
            log_probs = self._stage_log_probs(stage, x, keep)
            keep_logits.append((log_probs[..., 0] - log_probs[..., 1]).reshape(b, grid.slices, -1))
            if stage_masks is None:
                keep = self._select(stage, log_probs, keep, keep_ratio)
            else:
                keep = stage_masks[stage].reshape(b, s).to(x.dtype)
            decisions.append(keep)
            x = self._run_segment(x, keep, blocks, stage + 1 < temporal)
        feats = self.vit.norm(x)
        # with erasers refit in phase 2 (train.erasure_refit_every), training goes through them too
        pixels = self.erase(self.decode(feats) * keep.unsqueeze(-1), keep, keep_ratio)
        pixels = self.publish_changes(pixels, keep)
        return AnonymizerOutput(
            video=tubelets_to_video(pixels, grid),
            keep_mask=keep.reshape(b, grid.slices, grid.tokens_per_slice),
            decisions=[d.reshape(b, grid.slices, grid.tokens_per_slice) for d in decisions],
            action_logits=self.action_head(feats, keep) if self.action_head is not None else None,
            keep_logits=keep_logits,
        )

    # ------------------------------------------------------------------ inference: top-k, tokens removed
    @torch.no_grad()
    def anonymize(self, video: torch.Tensor, keep_ratio: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Anonymize ``video`` (B x 3 x T x H x W float) keeping ``int(N * a^m)`` tokens per slice at stage m.

        Returns the anonymized video (same shape, dropped tubelets exactly zero) and the keep mask
        (B x slices x tokens-per-slice, 1 = kept).
        """
        out = self._forward_topk(video, self.cfg.keep_ratio if keep_ratio is None else keep_ratio)
        return out.video, out.keep_mask

    def _forward_topk(self, video: torch.Tensor, keep_ratio: float) -> AnonymizerOutput:
        tubelets, keep_mask, decisions, feats = self._decode_topk(video, keep_ratio)
        b = tubelets.shape[0]
        tubelets = self.erase(tubelets, keep_mask, keep_ratio)
        pixels = self.publish_changes(tubelets, keep_mask.reshape(b, -1))
        logits = None
        if self.action_head is not None:
            logits = self.action_head.fc(feats.mean(dim=1))
        return AnonymizerOutput(tubelets_to_video(pixels, self.grid), keep_mask, decisions, logits)

    @torch.no_grad()
    def decoded_tubelets(self, video: torch.Tensor, keep_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference: the decoded tubelets (``B x S x P``, dropped ones zero) before any eraser, and the keep
        mask (B x L x N): what an eraser is fitted on."""
        tubelets, keep_mask, _, _ = self._decode_topk(video, keep_ratio)
        return tubelets, keep_mask

    def _decode_topk(self, video: torch.Tensor, keep_ratio: float
                     ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Top-k selection and decoding: (decoded tubelets B x S x P, dropped ones zero; keep mask B x L x N;
        per-stage decisions; the kept tokens' final features)."""
        grid = self.grid
        counts = self.keep_counts(keep_ratio)
        x = self.vit.tokens(video)
        b, _, d = x.shape
        n_all = grid.tokens_per_slice
        # index[b, l, j]: original position (within its slice) of the j-th token still present in slice l.
        # (derived from x rather than expanded to (b, L, N), so that traced exports keep a dynamic batch axis)
        index = torch.zeros_like(x[..., 0], dtype=torch.long).reshape(b, grid.slices, n_all)
        index = index + torch.arange(n_all, device=x.device)
        prior = None
        if self.cfg.selection == "prior":  # the fixed scores, per clip, to gather as the tokens are
            prior = torch.zeros_like(index, dtype=x.dtype) + self.keep_prior.to(x.dtype)
        segments = self.vit.segments(self.cfg.selection_points)
        temporal = self._temporal_segments()
        x = self._run_segment(x, None, segments[0], temporal > 0)
        decisions: list[torch.Tensor] = []
        for stage, blocks in enumerate(segments[1:]):
            n = index.shape[-1]
            if prior is None:
                score = self.scorers[stage](x, x.new_ones(x.shape[:2]), grid.slices)[..., 0]
                score = score.reshape(b, grid.slices, n)
            else:
                score = prior.gather(2, index)
            local = topk_per_slice(score, counts[stage])
            x = gather_tokens(x.reshape(b, grid.slices, n, d), local).reshape(b, -1, d)
            index = index.gather(2, local)
            decisions.append(mask_from_index(index, n_all).to(x.dtype))
            if stage + 1 < temporal:  # per-position attention needs the grid: scatter, mask, gather back
                full = scatter_tokens(x.reshape(b, grid.slices, -1, d), index, n_all).reshape(b, -1, d)
                full = self._run_segment(full, decisions[-1].reshape(b, -1) > 0.5, blocks, True)
                x = gather_tokens(full.reshape(b, grid.slices, n_all, d), index).reshape(b, -1, d)
            else:
                x = self.vit.run_blocks(x, None, *blocks)  # dropped tokens are gone: no mask needed
        feats = self.vit.norm(x)
        pixels = self.decode(feats).reshape(b, grid.slices, index.shape[-1], -1)
        pixels = scatter_tokens(pixels, index, n_all).reshape(b, grid.num_tokens, -1)
        keep_mask = decisions[-1] if decisions else x.new_ones(b, grid.slices, n_all)
        return pixels, keep_mask, decisions, feats
