"""Typed configuration of the video transformers, and the named model presets.

The paper's symbols map to one field each:

==============  =========================  ==================================================
paper           field                      meaning
==============  =========================  ==================================================
``a``           ``ModelConfig.keep_ratio``  per-stage keep ratio; stage ``m`` keeps ``a^m``
``L``           ``TubeletGrid.slices``      temporal slices (``num_frames / tubelet[0]``)
``N``           ``tokens_per_slice``        tokens per slice (``(H/p)(W/p)``)
PSB             ``selection_points``        a token selection before each listed block
PAB             blocks after the last one   anonymization blocks over the kept tokens
==============  =========================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from stprivacy.errors import KeepRatioError

if TYPE_CHECKING:
    from stprivacy.layers.tubelets import TubeletGrid

#: Values of ``ModelConfig.pre_selection_attention``.
PRE_SELECTION_ATTENTION = ("global", "temporal", "temporal-until-last")


@dataclass
class ModelConfig:
    """A plain-torch video ViT (no CLS token) and, for the anonymizer, where and how much it sparsifies."""

    num_frames: int = 16
    img_size: int = 112
    tubelet: tuple[int, int, int] = (2, 16, 16)
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    #: Blocks before which tokens are selected (0-based). Blocks before the first one see every token, so they
    #: can move the content of a tubelet that will be dropped into one that is kept; 0 = the first selection
    #: scores the tubelet embeddings themselves, and every block sees only kept tubelets.
    selection_points: tuple[int, ...] = (3, 6, 9)
    #: Default per-stage keep ratio ``a`` (training target; inference can use another one).
    keep_ratio: float = 0.7
    #: Training-time selection: "gumbel" (the paper: a hard straight-through Gumbel-softmax decision per token,
    #: its ratio set by the keep-ratio loss) or "topk" (this project's option: the inference rule, the top
    #: ``int(N a^m)`` per slice of the Gumbel-perturbed keep scores, with the straight-through gradient of the
    #: keep probability; it trains the ranking that deployment uses, at any ``a``) or "prior" (this project's
    #: option: one fixed ranking of the positions, the same for every clip, set before phase 1 from where the
    #: training clips change most on average, ``selection.motion_prior``; no label is used, and a keep pattern
    #: that is the same for every clip tells nothing about it. The scorers are then unused).
    selection: str = "gumbel"
    #: Temperature of the Gumbel-softmax (the paper: 1).
    gumbel_tau: float = 1.0
    #: Attention of the anonymizer's blocks before the first selection: "global" (the paper: every token attends
    #: to every token, so a background token can carry the actor's motion) or "temporal" (each token attends only
    #: to the tokens at its own spatial position in the other slices: it sees how its own tubelet moves, and
    #: nothing of the others, so the scorer judges a tubelet by its own content) or "temporal-until-last" (the
    #: same for every block up to the last selection, so no content moves between positions before the final
    #: decision: the head can read the action only from the positions that stay kept; the blocks after the last
    #: selection are global).
    pre_selection_attention: str = "global"
    #: The token scorer's slice- and clip-level context (the paper's multi-level aggregation). It lets the
    #: decision about one tubelet depend on every other one, so *which* tubelets are kept can itself encode what
    #: a dropped tubelet showed (``tests/training/test_selector_learns.py``); False = each tubelet is judged by
    #: its own features alone.
    scorer_context: bool = True
    #: The decoder paints each tubelet in ``output_block`` x ``output_block`` blocks of one colour (this project's
    #: option; 1 = the paper's per-pixel linear decoder). A per-pixel decoder can hide an attribute in fine
    #: patterns that a co-trained recognizer is fooled by and a fresh one reads back; a coarse output leaves only
    #: block colours, which every attacker sees alike. It holds in training and in deployment alike.
    output_block: int = 1
    #: The decoder paints each tubelet as a combination of ``output_rank`` learned pixel patterns (0 = no limit,
    #: the paper's linear decoder): each kept tubelet then publishes ``output_rank`` numbers, not ``C*t*p*p``. A
    #: small channel leaves the anonymizer little room for a code beside the action, and a privacy recognizer
    #: reading a low-dimensional output learns it in few batches, so the co-trained one does not lag a fresh one.
    output_rank: int = 0
    #: Publish only what changes over time (this project's option; False = the paper): each kept tubelet is painted
    #: mid-grey plus its difference from the mean of the kept tubelets at the same position over the clip's
    #: slices. The clip's average at every position is then grey wherever a tubelet is kept, so a reader that
    #: averages frames (the ridge attacker) finds no still appearance, only the keep pattern and the clamp's
    #: effect; what moves (the action) is kept. In training and in deployment alike.
    temporal_residual: bool = False
    #: Local ImageNet ViT weights (timm / DeiT layout, .safetensors or .pth) inflated into the trunk when a model is
    #: built for training; None = from scratch. See :mod:`stprivacy.models.pretrained`.
    pretrained: str | None = None
    #: How the 2D patch kernel is inflated over the tubelet's frames: "average" or "center".
    pretrained_inflate: str = "average"
    #: The setting this config reproduces starts from ImageNet weights (the paper presets): without
    #: ``pretrained`` the run warns at start and its reports record the from-scratch start.
    pretrained_expected: bool = False

    def __post_init__(self) -> None:
        self.tubelet = tuple(int(v) for v in self.tubelet)
        self.selection_points = tuple(int(v) for v in self.selection_points)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if list(self.selection_points) != sorted(set(self.selection_points)):
            raise ValueError(f"selection_points must be strictly increasing, got {self.selection_points}")
        if self.selection_points and not (0 <= self.selection_points[0] and self.selection_points[-1] < self.depth):
            raise ValueError(
                f"selection_points {self.selection_points} must lie in 0..{self.depth - 1} "
                "(at least one block after the last selection)"
            )
        if self.selection not in ("gumbel", "topk", "prior"):
            raise ValueError(f"selection must be 'gumbel', 'topk' or 'prior', got {self.selection!r}")
        if self.pre_selection_attention not in PRE_SELECTION_ATTENTION:
            raise ValueError(f"pre_selection_attention must be one of {PRE_SELECTION_ATTENTION}, got "
                             f"{self.pre_selection_attention!r}")
        if self.gumbel_tau <= 0:
            raise ValueError(f"gumbel_tau must be > 0, got {self.gumbel_tau}")
        validate_keep_ratio(self.keep_ratio)
        t, ph, pw = self.tubelet
        if self.num_frames % t or self.img_size % ph or self.img_size % pw:
            raise ValueError(f"clip {self.num_frames}x{self.img_size}x{self.img_size} is not divisible by tubelet "
                             f"{self.tubelet}")
        if self.output_rank < 0:
            raise ValueError(f"output_rank must be >= 0 (0 = no limit), got {self.output_rank}")
        if self.output_block < 1 or ph % self.output_block or pw % self.output_block:
            raise ValueError(f"output_block must be >= 1 and divide the patch size {ph}x{pw}, got "
                             f"{self.output_block}")

    @property
    def grid(self) -> TubeletGrid:
        from stprivacy.layers.tubelets import TubeletGrid  # torch: not needed to read a config

        return TubeletGrid(self.num_frames, self.img_size, self.img_size, self.tubelet)

    def with_(self, **changes) -> ModelConfig:
        return replace(self, **changes)


def validate_keep_ratio(keep_ratio: float) -> float:
    if not isinstance(keep_ratio, (int, float)) or isinstance(keep_ratio, bool):
        raise KeepRatioError(f"keep_ratio must be a number, got {type(keep_ratio).__name__}")
    if not 0.0 < float(keep_ratio) <= 1.0:
        raise KeepRatioError(f"keep_ratio must satisfy 0 < a <= 1, got {keep_ratio}")
    return float(keep_ratio)


MODEL_PRESETS: dict[str, ModelConfig] = {
    # The paper's setting: ViT-S over 16 x 112 x 112 clips, 8 slices x 49 tokens.
    "vit-s": ModelConfig(),
    "vit-t": ModelConfig(embed_dim=192, num_heads=3),
    # Synthetic benchmark at 64 x 64 x 8 (4 slices x 16 tokens): an anonymizer that trains on 2 CPU cores in
    # minutes, with the paper's layout of three selections and three anonymization blocks.
    "synth": ModelConfig(
        num_frames=8, img_size=64, tubelet=(2, 16, 16), embed_dim=96, depth=6, num_heads=4,
        selection_points=(1, 2, 3),
    ),
    # The recognizers and attackers of the synthetic benchmark: 96.3 % action top-1 after 3 epochs on 4,000 clips.
    "synth-rec": ModelConfig(
        num_frames=8, img_size=64, tubelet=(2, 16, 16), embed_dim=96, depth=4, num_heads=4,
        selection_points=(1, 2, 3),
    ),
    # For unit tests only: a few thousand parameters, 4 slices x 16 tokens.
    "tiny": ModelConfig(
        num_frames=8, img_size=32, tubelet=(2, 8, 8), embed_dim=48, depth=5, num_heads=2,
        selection_points=(1, 2, 3),
    ),
}


def model_preset(name: str) -> ModelConfig:
    try:
        return replace(MODEL_PRESETS[name])
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}") from None


#: The trainable privacy attacker families (``models.recognizers.build_attacker``): what phase 2 can fight.
TRAINED_ATTACKERS = ("vit", "frame", "linear")


@dataclass
class FrameAttackerConfig:
    """The per-frame 2D CNN attacker: one stride-2 conv per width, global pooling, frame logits pooled over time."""

    widths: tuple[int, ...] = field(default_factory=lambda: (32, 64, 128, 128))
    #: Frames per clip seen in one training step (a random subset; 0 = all). Frames of a clip show the same
    #: appearance, so a per-frame attacker loses little by seeing a few, and trains several times faster.
    #: Evaluation always pools every frame.
    train_frames: int = 2
    #: The grid of phase 2's "linear" attacker family (:class:`~stprivacy.models.recognizers.CellLinearAttacker`):
    #: each frame's means over ``linear_cells`` x ``linear_cells`` cells, phase 3's ridge learnt by gradient steps.
    linear_cells: int = 16

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if self.train_frames < 0:
            raise ValueError(f"train_frames must be >= 0, got {self.train_frames}")
        if self.linear_cells < 1:
            raise ValueError(f"linear_cells must be >= 1, got {self.linear_cells}")
