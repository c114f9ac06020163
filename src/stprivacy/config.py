"""Experiment configuration: nested dataclasses hold the schema and the only defaults; YAML presets hold values.

* ``load_experiment("synth-quick")`` reads ``configs/synth-quick.yaml`` shipped with the package (or any YAML path).
* Dotted overrides (``train.phase1_epochs=10``) are parsed as YAML scalars and type-checked; unknown keys are errors.
* ``model`` and ``recognizer`` sections may name a ``preset`` (see :data:`~stprivacy.models.config.MODEL_PRESETS`)
  and override some of its fields.

The paper's symbols: ``a`` = ``model.keep_ratio``, ``lambda_A`` = ``train.lambda_a``, ``lambda_P`` =
``train.lambda_p``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from stprivacy.data.sampling import ClipSampling
from stprivacy.errors import ConfigError
from stprivacy.models.baselines.config import BdqConfig, SpactConfig, VitaConfig, check_baseline
from stprivacy.models.config import TRAINED_ATTACKERS, FrameAttackerConfig, ModelConfig, model_preset
from stprivacy.runtime import RuntimeConfig


@dataclass
class DataConfig:
    #: "synthetic", "hmdb51", "ucf101", "pa_hmdb51" or "manifest".
    kind: str = "synthetic"
    #: Synthetic benchmark preset ("quick", "paper", "hard") and split sizes.
    synth_preset: str = "quick"
    train_size: int = 4000
    test_size: int = 1000
    #: The validation split every recipe choice and every per-epoch instrument reads (never the test split).
    #: Synthetic: ``val_size`` clips of the renderer's own ``val`` stream (disjoint from train and test).
    #: Real data: a seeded ``val_fraction`` of the training videos, held out of training.
    val_size: int = 500
    val_fraction: float = 0.1
    #: Folder holding the videos (``<root>/<class>/<video>``) for real datasets.
    root: str | None = None
    #: Folder of the official split files (HMDB51 or UCF101) and which split (1-3).
    split_dir: str | None = None
    split: int = 1
    #: PA-HMDB51: folder of the ``<action>.json`` files. Manifest: the training manifest CSV.
    labels: str | None = None
    #: Manifest: the test manifest CSV.
    test_labels: str | None = None
    #: Allow manifest paths outside the manifest's folder.
    allow_outside_root: bool = False
    sampling: ClipSampling = field(default_factory=ClipSampling)
    #: Horizontal flips in training (off for the synthetic benchmark: walk_left / walk_right would swap).
    hflip: bool = False
    #: Folder for the decoded-clip cache (None = no cache).
    cache_dir: str | None = None
    #: Parallel workers for rendering / decoding.
    workers: int = 2

    def __post_init__(self) -> None:
        kinds = ("synthetic", "hmdb51", "ucf101", "pa_hmdb51", "manifest")
        if self.kind not in kinds:
            raise ConfigError(f"data.kind must be one of {kinds}, got {self.kind!r}")
        if self.val_size < 0 or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("data.val_size must be >= 0 and data.val_fraction in [0, 1)")


@dataclass
class TrainConfig:
    """Phases 1 and 2 (the anonymizer's training)."""

    batch_size: int = 32
    #: Peak learning rate; None = the paper's rule ``1e-3 * batch_size / 512``.
    lr: float | None = None
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    phase1_epochs: int = 80
    phase2_epochs: int = 40
    #: The released code's schedule, off by default (1.0, 1.0, 0): ViT-trunk learning rate = ``backbone_lr_scale``
    #: x the rate of the predictors (token scorers, heads; the released code uses at most 0.1), times
    #: ``layer_decay ** (depth + 1 - layer)`` per layer (layer-wise decay), and the trunk frozen for the first
    #: ``freeze_backbone_epochs`` epochs of phase 1. Meant for ImageNet-initialised trunks (``model.pretrained``).
    backbone_lr_scale: float = 1.0
    layer_decay: float = 1.0
    freeze_backbone_epochs: int = 0
    #: Weight of an L1 reconstruction of the kept tubelets in phase 1 (0 = the paper; see training/phase1.py).
    phase1_reconstruction: float = 0.0
    #: Weight of an action critic in phase 1 (0 = the paper; see training/phase1.py): a recognizer trained with the
    #: anonymizer on its output pixels and keep mask, so that selection keeps the tubelets whose pixels carry the
    #: action.
    phase1_critic: float = 0.0
    #: What the phase-1 critic reads: "output" (the anonymizer's decoded pixels) or "input" (the *original* pixels
    #: of the kept tubelets, the rest black; this project's option). The decoder can paint the action into any
    #: kept tubelet, so an output critic does not tie the action to the kept tubelets' own content; an input
    #: critic can only read the action where the selector kept it, but it also reads *which* tubelets are kept,
    #: and the selector learns to signal the class in that pattern (docs/results/recipe_study.md). "input-random":
    #: the critic learns from random masks of the same counts and the selector learns through it, so the keep
    #: pattern means nothing to it.
    phase1_critic_input: str = "output"
    #: Weight of a keep-pattern adversary in phase 1 (0 = the paper; see training/phase1.py): a small attacker
    #: learns the private attributes from the keep mask alone, and the selector learns to leave it at chance
    #: (the ``confusion`` target), so that *which* tubelets a video shows tells nothing private.
    phase1_pattern_adversary: float = 0.0
    #: What the keep-pattern attacker learns from: "training" (the batch's training masks, Gumbel-perturbed top-k
    #: at the sampled ratio) or "published" (the inference masks of the same clips at that ratio, noise-free top-k,
    #: what a published video shows; one extra no-grad forward per batch).
    phase1_pattern_masks: str = "training"
    #: Stop training the selection (embedding, blocks up to the last selection, scorers) after this many phase-1
    #: epochs (0 = never, the paper); the head and the later blocks train on. Phase 1's per-epoch coverage is
    #: highest early and falls while the head learns to read the action from tokens it moved elsewhere
    #: (docs/results/recipe_study.md, third session), so this keeps the early, actor-following selection.
    phase1_selection_epochs: int = 0
    #: Train over a range of keep ratios ``[low, high]``, one sampled uniformly per batch (empty = always
    #: ``model.keep_ratio``), so that one anonymizer serves every deployment ratio. Pair it with
    #: ``model.selection: topk``: a Gumbel decision per token cannot follow a target that changes per batch.
    keep_ratio_range: tuple[float, ...] = ()
    #: lambda_A and lambda_P of ``L_spars + lambda_A CE - lambda_P BCE``.
    lambda_a: float = 0.5
    lambda_p: float = 0.5
    #: Stabilizers of the field, off by default (the paper uses none): re-initialise the privacy recognizer(s)
    #: every ``privacy_restart_every`` epochs (0 = never); train ``privacy_ensemble`` privacy recognizers and let
    #: the anonymizer fight the strongest one in each batch (the smallest BCE), VITA's max over the ensemble.
    privacy_restart_every: int = 0
    privacy_ensemble: int = 1
    #: A fresh attacker in the loop (this project's option, 0 = off): every ``privacy_refresh_every`` batches of
    #: phase 2 the privacy recognizers restart from a new initialisation (Adam moments cleared) and the next
    #: ``privacy_refresh_steps`` batches train them alone on the current output, the anonymizer frozen; the
    #: min-max then resumes against an attacker that learnt today's output from scratch, as phase 3's does.
    privacy_refresh_every: int = 0
    privacy_refresh_steps: int = 50
    #: The privacy recognizers of phase 2 read the output pixelated by this factor (block means; 1 = off, the
    #: paper), in both steps. An anonymizer can fool a full-resolution recognizer with fine patterns that leave
    #: colours and shapes readable to a fresh attacker; against block means it has to change the colours
    #: themselves. Frame sizes must be divisible by it.
    adversary_lowpass: int = 1
    #: Std of Gaussian noise added to the output before the privacy recognizers read it in phase 2's training
    #: steps (GANs' instance noise; 0 = off, the paper): a recognizer trained through noise cannot be fooled by
    #: low-amplitude patterns, so fooling it asks for a change the noise does not hide.
    adversary_noise: float = 0.0
    #: Attacker families the anonymizer fights in phase 2: ("vit",) is the paper; adding "frame" (a per-frame
    #: CNN, this project's option) makes it fight the family that reads appearance best, "linear" (every frame's
    #: cell means, one linear map: phase 3's ridge learnt by gradient steps) the family that reads the anonymized
    #: synthetic output best. Each family gets
    #: ``privacy_ensemble`` members; the anonymizer fights the strongest member per batch.
    privacy_adversaries: tuple[str, ...] = ("vit",)
    #: The anonymizer's privacy term: "neg_bce" (the paper: ``- lambda_P BCE(P)``) or "confusion" (``+ lambda_P
    #: BCE(P, 1/2)``: P's predictions pushed to 1/2, not to the wrong label; see training/phase2.py).
    privacy_objective: str = "neg_bce"
    #: Recognizer updates per anonymizer update (on the same detached output); the paper alternates 1:1.
    adversary_steps: int = 1
    #: The anonymizer steps on every ``anonymizer_every``-th batch of phase 2; on the others the recognizers train
    #: alone on the current output (WGAN's n_critic; 1 = the paper's 1:1). Unlike ``adversary_steps`` each of
    #: those recognizer updates sees a new batch, so the recognizers catch up with the output, not with one batch.
    anonymizer_every: int = 1
    #: Deploy the exponential moving average of the anonymizer's phase-2 weights with this decay (0 = off, the
    #: paper: the last iterate). Gradient play in a min-max tends to cycle around the equilibrium (the anonymizer
    #: switches codes, the recognizers follow); the average of the iterates sits nearer its centre than any one
    #: of them. The validation instruments of phase 2 read the average too.
    anonymizer_ema: float = 0.0
    #: Epochs of recognizer training on the frozen phase-1 output before the min-max starts (0 = none).
    adversary_warmup_epochs: float = 0.0
    #: Weight of phase 1's head CE kept in phase 2's anonymizer objective (0 = the paper).
    phase2_head_ce: float = 0.0
    #: Weight of an L1 identity anchor on the kept tubelets in phase 2 (0 = the paper).
    phase2_reconstruction: float = 0.0
    #: Keep phase 1's selection through phase 2: the tubelet embedding, the blocks up to the last selection and
    #: the token scorers stop learning, so only the anonymization blocks and the pixel decoder are trained by the
    #: min-max (off = the paper, everything trains). On synthetic data phase 2 otherwise brings actor coverage
    #: back to random (docs/results/seeds_quick.md).
    phase2_freeze_selection: bool = False
    #: Weight of an attacker-free privacy term in phase 2 (0 = the paper): per private attribute, the squared
    #: difference of the mean output features of clips with and without it, the features from a random per-frame
    #: CNN of widths ``privacy_match_widths`` redrawn every 50 batches (training/appearance.py).
    privacy_match: float = 0.0
    privacy_match_widths: tuple[int, ...] = (16, 32, 64)
    #: Weight of a closed-form linear attacker in phase 2 (0 = the paper; training/linear_attacker.py): phase 3's
    #: ridge attacker (evaluation/ridge.py: every frame's means over a ``privacy_ridge_cells`` grid, penalty
    #: ``privacy_ridge_alpha``) solved each step on the last ``privacy_ridge_buffer`` batches of the published
    #: view; the anonymizer minimises its squared margin (the attribute's score gap on the batch times the gap on
    #: the newest buffered batches). Measured: it fools itself, not a ridge fitted on the final output (seed 0:
    #: 66.3 against 66.0 cMAP); negative, off everywhere.
    privacy_ridge: float = 0.0
    privacy_ridge_cells: int = 16
    privacy_ridge_buffer: int = 32
    privacy_ridge_alpha: float = 1e-3
    #: With ``privacy_ridge_refit_every = K`` > 0 the ridge is not solved on a buffer of training batches: every K
    #: batches of phase 2 it is refit on the published output (inference mode, uint8, at ``model.keep_ratio``) of
    #: ``privacy_ridge_refit_clips`` random training clips, three quarters to fit and a quarter for the margin
    #: that scales the loss, and held fixed in between (training/linear_attacker.py: phase 3's ridge, in the loop).
    privacy_ridge_refit_every: int = 0
    privacy_ridge_refit_clips: int = 1600
    #: An oracle for the laboratory, not a recipe: weight of the mean squared difference, over the kept pixels of
    #: the published view, between each clip's output and that of its *twin* (the same clip rendered with every
    #: private attribute flipped: same action, motion, scene and clothes; data.synthetic.dataset.with_twins),
    #: under the same keep decisions. It tells the anonymizer directly what appearance is, which no real dataset
    #: can, so it measures what this architecture can publish when the training signal is perfect. Synthetic data
    #: only (0 = off).
    twin_invariance: float = 0.0
    #: Weights of two attacker-free rate terms on the kept tubelets of phase 2's output (0 = the paper):
    #: ``output_energy``, the mean squared deviation of their pixels from mid-grey, and ``output_tv``, their mean
    #: absolute difference between neighbouring pixels (losses.output_energy / spatial_variation). The min-max
    #: alone never asks the anonymizer to remove what the action does not need, only to fool today's privacy
    #: recognizer; what costs nothing to keep stays in the output for a fresh attacker to read.
    output_energy: float = 0.0
    output_tv: float = 0.0
    #: Weight of a learner-free term in phase 2 (0 = the paper): the output's kept tubelets must change over time
    #: as much as the input's pixels there do, cell by cell (losses.motion_anchor_loss). On the synth-quick
    #: preset the output's motion energy read gender at 84 AP where the raw kept pixels' read 62
    #: (docs/results/recipe_study.md, tenth session): the anonymizer wrote it into how its tubelets flicker.
    motion_anchor: float = 0.0
    #: Phase 2 keeps the pixel decoder's weight at rank ``phase2_output_rank`` (0 = no limit, the paper): once at
    #: the start (its best rank-r approximation, by SVD, of phase 1's decoder) and after every anonymizer step
    #: (projected gradient descent). Each kept tubelet then publishes a combination of r learned patterns: little
    #: room for a code beside the action, and an output that a co-trained privacy recognizer learns to read in
    #: few batches. Phase 1 keeps the full decoder, so its reconstruction still teaches the selector the actor
    #: (``model.output_rank``, the same limit from phase 1 on, loses the actor: docs/results/recipe_study.md).
    phase2_output_rank: int = 0
    #: After phase 2 (off = the paper), fit one linear eraser per keep ratio of ``erasure_keep_ratios`` on the
    #: published training clips and their attribute labels, and publish through it (models/erasure.py, LEACE):
    #: every attribute group then has the same mean decoder coefficients, so no linear reader of them beats
    #: chance on the fitting clips. Other ratios are published without one (with a warning). Needs a
    #: rank-limited decoder (``phase2_output_rank`` or ``model.output_rank``).
    linear_erasure: bool = False
    #: Keep ratios that get an eraser (empty: ``model.keep_ratio`` and 1). An eraser removes up to one direction
    #: per attribute from a clip's coefficient vector; at a = 0.4 the synth-quick clip has 8 coefficients, and
    #: erasing 5 of them took the action from 94 to 68 (docs/results/recipe_study.md, eleventh session).
    erasure_keep_ratios: tuple[float, ...] = ()
    #: With ``linear_erasure``: after each eraser's linear correction, a second-order guard (models/erasure.py):
    #: a small network on the coefficients, fitted in closed loop so that no linear reader of the coefficients,
    #: their squares and their products within a tubelet explains the attributes. Cell mean squares (the ridge
    #: attacker's second half) are such quadratic forms; the linear correction leaves them readable.
    erasure_second_order: bool = False
    #: The guard's weight on its own mean squared change (standardised units) against the leak it removes.
    erasure_distortion: float = 0.1
    #: Which products of two coefficients the guard's reader sees: "tubelet" (within a tubelet, as the ridge
    #: attacker's cell mean squares do) or "all" (across tubelets too: a reader of every product still read 62-64
    #: cMAP after a "tubelet" guard on validation, 51 after an "all" one; the fit then takes minutes, not seconds:
    #: docs/results/recipe_study.md, twelfth session).
    erasure_guard_products: str = "tubelet"
    #: Keep ratios of ``erasure_keep_ratios`` whose eraser is the second-order guard alone, without the linear
    #: correction. At a = 0.4 a synth-quick clip has 8 coefficients, and the linear correction took out 5 of them
    #: with 25-33 action points; the guard alone changes them as little as its distortion weight allows.
    erasure_guard_only_keep_ratios: tuple[float, ...] = ()
    #: With ``linear_erasure``: fresh Gaussian noise added to every published coefficient after the eraser (and
    #: its guard), of this many times the coefficient's spread on the fitting clips; a new draw at every
    #: publication. 0 = none. Applied at ``erasure_noise_keep_ratios`` (empty: at every eraser's ratio).
    erasure_noise: float = 0.0
    erasure_noise_keep_ratios: tuple[float, ...] = ()
    #: With ``linear_erasure``: every ``erasure_refit_every`` phase-2 batches (0 = only after phase 2), refit the
    #: erasers on ``erasure_refit_clips`` training clips and train through them, so that the anonymizer learns to
    #: carry the action outside what they remove. Phase 2's batches then draw their keep ratio from the erasers'
    #: ratios (``erasure_keep_ratios``) instead of ``keep_ratio_range``.
    erasure_refit_every: int = 0
    erasure_refit_clips: int = 1600
    #: Weight of a learner-free colour-invariance term in phase 2 (0 = the paper): the kept tubelets of the output
    #: must not change when the input clip is re-coloured at random (channel order, per-channel gamma in
    #: [1/``colour_invariance_gamma``, ``colour_invariance_gamma``], inversion), decided through the same keep
    #: mask (training/invariance.py). Removes every function of absolute colour (skin tone) from the output.
    #: Paired with the base on validation (docs/results/recipe_study.md, ninth session): weight 1, worst cMAP -4.9,
    #: action -0.1; 2, -5.7 / -1.7; 5, -4.6 / -3.7. Weight 1 in the synthetic presets.
    colour_invariance: float = 0.0
    colour_invariance_gamma: float = 2.5
    #: Weight of the same term for shapes (0 = the paper): the kept tubelets must not change when every frame of
    #: the input is grown or shrunk by a grey-level dilation or erosion of ``shape_invariance_size`` pixels
    #: (training/invariance.py, random_morphology): outlines move by a pixel or two, poses and motion stay. Aimed
    #: at the attributes that are shapes (a skirt, long hair, bare limbs' width), which a re-colouring keeps.
    shape_invariance: float = 0.0
    shape_invariance_size: int = 3
    #: Weight of a learner-free term in phase 2 (0 = the paper): the kept tubelets of the output must not change
    #: when the clip's *dropped* tubelets are replaced by another clip's (training/invariance.py), under the same
    #: keep decisions. Attention before the first selection carries a dropped tubelet's content (a bystander)
    #: into the kept ones; this asks the decoder not to paint it there.
    dropped_invariance: float = 0.0
    #: Weight of the same idea in phase 1, on the *selection* (0 = the paper): the token scorers' keep logits on a
    #: re-coloured copy of the clip, under the same earlier decisions, must rank the tokens of every slice as on
    #: the clip itself (training/invariance.py, selection_invariance_loss). Phase 2 freezes or adapts the
    #: selection; either way which tubelets are published is decided here, and a keep pattern chosen by colour
    #: tells skin tone and bare limbs (the suite reads them from the masks alone at 60-73 AP).
    phase1_colour_invariance: float = 0.0
    #: The anonymizer's learning rate in phase 2 as a multiple of ``lr`` (the recognizers keep ``lr``).
    anonymizer_lr_scale: float = 1.0
    #: Clamp and quantise the anonymizer's output in phase 2 as deployment does (straight-through), so that the
    #: recognizers see what phase 3's attackers will see (off = the paper).
    bounded_output: bool = False
    #: With ``bounded_output``, the keep mask that travels with the output to the recognizers is the one the
    #: published video shows: a kept tubelet painted black (every pixel rounds to 0) counts as dropped, as it does
    #: for phase 3's attackers (``evaluation.instruments.keep_mask_from_video``).
    bounded_mask: bool = False
    #: The gradient of ``bounded_output``'s clamp: "clamp" (zero outside [0, 1]: a saturated pixel learns nothing
    #: from the recognizers) or "straight-through" (the identity's gradient; the forward value is the same).
    bounded_gradient: str = "clamp"
    #: Instability guard: a NaN/inf loss, or a privacy BCE above ``max_privacy_bce`` (the anonymizer's -BCE term
    #: running away), rolls back to the last epoch checkpoint with the learning rate times ``rollback_lr_factor``;
    #: after ``max_rollbacks`` rollbacks in one phase training stops with an error.
    max_rollbacks: int = 3
    rollback_lr_factor: float = 0.5
    max_privacy_bce: float = 20.0

    def __post_init__(self) -> None:
        if not 0 < self.backbone_lr_scale <= 1 or not 0 < self.layer_decay <= 1:
            raise ConfigError("train.backbone_lr_scale and train.layer_decay must lie in (0, 1]")
        if self.freeze_backbone_epochs < 0:
            raise ConfigError("train.freeze_backbone_epochs must be >= 0")
        if self.phase1_critic_input not in ("output", "input", "input-random"):
            raise ConfigError(f"train.phase1_critic_input must be 'output', 'input' or 'input-random', got "
                              f"{self.phase1_critic_input!r}")
        if self.phase1_pattern_masks not in ("training", "published"):
            raise ConfigError(f"train.phase1_pattern_masks must be 'training' or 'published', got "
                              f"{self.phase1_pattern_masks!r}")
        if self.bounded_gradient not in ("clamp", "straight-through"):
            raise ConfigError(f"train.bounded_gradient must be 'clamp' or 'straight-through', got "
                              f"{self.bounded_gradient!r}")
        if self.bounded_mask and not self.bounded_output:
            raise ConfigError("train.bounded_mask reads the mask off the bounded output: set train.bounded_output")
        if set(self.privacy_adversaries) - set(TRAINED_ATTACKERS) or not self.privacy_adversaries:
            raise ConfigError(f"train.privacy_adversaries must be a non-empty list of {', '.join(TRAINED_ATTACKERS)}, "
                              f"got {list(self.privacy_adversaries)}")
        if self.phase1_selection_epochs < 0:
            raise ConfigError(f"train.phase1_selection_epochs must be >= 0, got {self.phase1_selection_epochs}")
        if self.phase1_pattern_adversary < 0:
            raise ConfigError(f"train.phase1_pattern_adversary must be >= 0, got {self.phase1_pattern_adversary}")
        if self.privacy_objective not in ("neg_bce", "confusion"):
            raise ConfigError(f"train.privacy_objective must be 'neg_bce' or 'confusion', got "
                              f"{self.privacy_objective!r}")
        if not 0 <= self.anonymizer_ema < 1:
            raise ConfigError(f"train.anonymizer_ema must lie in [0, 1), got {self.anonymizer_ema}")
        if self.anonymizer_every < 1:
            raise ConfigError(f"train.anonymizer_every must be >= 1, got {self.anonymizer_every}")
        if self.adversary_steps < 1 or self.adversary_warmup_epochs < 0 or self.anonymizer_lr_scale <= 0:
            raise ConfigError("train.adversary_steps must be >= 1, train.adversary_warmup_epochs >= 0 and "
                              "train.anonymizer_lr_scale > 0")
        if self.privacy_refresh_every < 0 or (self.privacy_refresh_every
                                              and not 0 < self.privacy_refresh_steps < self.privacy_refresh_every):
            raise ConfigError("train.privacy_refresh_every must be >= 0, and when set, train.privacy_refresh_steps "
                              "must lie in [1, privacy_refresh_every) so that the anonymizer still trains")
        if self.adversary_noise < 0:
            raise ConfigError("train.adversary_noise must be >= 0")
        if self.adversary_lowpass < 1:
            raise ConfigError("train.adversary_lowpass must be >= 1 (1 = the full-resolution recognizers)")
        if self.phase2_output_rank < 0:
            raise ConfigError("train.phase2_output_rank must be >= 0 (0 = no limit)")
        if any(not 0 < a <= 1 for a in self.erasure_keep_ratios):
            raise ConfigError(f"train.erasure_keep_ratios must lie in (0, 1], got {list(self.erasure_keep_ratios)}")
        if self.erasure_distortion < 0:
            raise ConfigError(f"train.erasure_distortion must be >= 0, got {self.erasure_distortion}")
        if self.erasure_guard_products not in ("tubelet", "all"):
            raise ConfigError(f"train.erasure_guard_products must be 'tubelet' or 'all', got "
                              f"{self.erasure_guard_products!r}")
        if self.erasure_guard_only_keep_ratios and not self.erasure_second_order:
            raise ConfigError("train.erasure_guard_only_keep_ratios leaves those ratios the second-order guard alone: "
                              "set train.erasure_second_order")
        for name, what in (("erasure_guard_only_keep_ratios", "be fitted"), ("erasure_noise_keep_ratios", "add noise")):
            stray = [a for a in getattr(self, name)
                     if self.erasure_keep_ratios and not ratio_in(a, self.erasure_keep_ratios)]
            if stray:
                raise ConfigError(f"train.{name} {stray} are not in train.erasure_keep_ratios "
                                  f"{list(self.erasure_keep_ratios)}: no eraser would {what} there")
        if self.erasure_noise < 0:
            raise ConfigError(f"train.erasure_noise must be >= 0, got {self.erasure_noise}")
        if self.erasure_noise and not self.linear_erasure:
            raise ConfigError("train.erasure_noise is added by the erasers: set train.linear_erasure")
        if self.erasure_second_order and not self.linear_erasure:
            raise ConfigError("train.erasure_second_order guards the linear erasers: set train.linear_erasure")
        if self.erasure_refit_every < 0 or self.erasure_refit_clips < 2:
            raise ConfigError("train.erasure_refit_every must be >= 0 and train.erasure_refit_clips >= 2")
        if self.erasure_refit_every and not self.linear_erasure:
            raise ConfigError("train.erasure_refit_every refits the linear erasers: set train.linear_erasure")
        if self.shape_invariance < 0 or self.shape_invariance_size < 2:
            raise ConfigError("train.shape_invariance must be >= 0 and train.shape_invariance_size >= 2 "
                              "(a 1-pixel morphology changes nothing)")
        if self.colour_invariance < 0 or self.phase1_colour_invariance < 0 or self.colour_invariance_gamma < 1:
            raise ConfigError("train.colour_invariance and train.phase1_colour_invariance must be >= 0 and "
                              "train.colour_invariance_gamma >= 1")
        if self.dropped_invariance < 0:
            raise ConfigError("train.dropped_invariance must be >= 0")
        if self.output_energy < 0 or self.output_tv < 0 or self.motion_anchor < 0:
            raise ConfigError("train.output_energy, train.output_tv and train.motion_anchor must be >= 0")
        if self.twin_invariance < 0:
            raise ConfigError("train.twin_invariance must be >= 0")
        if self.privacy_match < 0 or not self.privacy_match_widths or min(self.privacy_match_widths) < 1:
            raise ConfigError("train.privacy_match must be >= 0 and train.privacy_match_widths non-empty positive")
        if self.privacy_ridge < 0 or self.privacy_ridge_cells < 1 or self.privacy_ridge_buffer < 8 \
                or self.privacy_ridge_alpha <= 0 or self.privacy_ridge_refit_every < 0 \
                or self.privacy_ridge_refit_clips < 8:
            raise ConfigError("train.privacy_ridge must be >= 0, privacy_ridge_cells >= 1, privacy_ridge_buffer >= 8 "
                              "(the attacker reads once 8 batches are buffered), privacy_ridge_alpha > 0, "
                              "privacy_ridge_refit_every >= 0 and privacy_ridge_refit_clips >= 8")
        if self.keep_ratio_range and not (len(self.keep_ratio_range) == 2
                                          and 0 < self.keep_ratio_range[0] <= self.keep_ratio_range[1] <= 1):
            raise ConfigError("train.keep_ratio_range must be [low, high] with 0 < low <= high <= 1, or empty")


@dataclass
class EvalConfig:
    """Phase 3: fresh recognizers and attackers on anonymized clips, the trade-off sweep, seeds."""

    epochs: int = 80
    #: Epochs of the privacy attackers (None = ``epochs``).
    attacker_epochs: int | None = None
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    #: Deployment keep ratios evaluated for one trained anonymizer, without retraining.
    keep_ratios: tuple[float, ...] = (1.0, 0.85, 0.7, 0.55, 0.4)
    #: Attacker families: "vit" (video-level ViT), "frame" (per-frame CNN) and "ridge" (a ridge regression on
    #: every frame's means over a ``ridge_cells`` x ``ridge_cells`` grid, penalty ``ridge_alpha``; solved in
    #: closed form, evaluation/ridge.py). On the synthetic benchmark the ridge reads anonymized outputs better
    #: than the trained attackers do: a suite without it under-reports the leak. A finer grid reads more given
    #: enough clips (measured at a = 0.7 on 1,500 clips: 4, 8, 16, 32 cells -> 58.8, 63.8, 67.8, 70.2 cMAP): the
    #: synthetic presets use 32 (3,072 features, seconds per method on a CPU); 16 divides the paper's 112 and 224.
    #: The grid must divide the frame size. ``ridge_moments`` 2 also gives the ridge each cell's mean square (its
    #: contrast), which reads a silhouette the plain means average away: on the synth-quick output at a = 0.7,
    #: 67.3 -> 71.8 cMAP (docs/results/recipe_study.md, tenth session); 1 is the plain means.
    attackers: tuple[str, ...] = ("vit", "frame", "ridge")
    ridge_cells: int = 16
    ridge_alpha: float = 1e-3
    ridge_moments: int = 2
    #: "subspace" (this project's attacker family, evaluation/subspace.py): the top ``subspace_rank`` principal
    #: components of every tubelet position (at the anonymizer's tubelet size) over the published training clips,
    #: and a logistic regression on at most ``subspace_scores`` of those scores and every product of two. It reads
    #: the numbers a rank-limited decoder publishes (``train.phase2_output_rank``, whose value it should get) and
    #: the second-order leak across tubelets that the ridge's cell moments do not hold. ``subspace_reader`` "mlp"
    #: reads the scores with a small MLP instead (any smooth function of them: on the synth-quick output after the
    #: guard it read 5-7 points more than the products; docs/results/recipe_study.md, thirteenth session).
    subspace_rank: int = 2
    subspace_scores: int = 64
    subspace_reader: str = "quadratic"
    #: Methods evaluated besides STPrivacy (baselines); "raw" is the unmodified video. Non-learned: downsample2x,
    #: downsample4x, blur_weak, blur_strong, blackening; learned (trained first, see ``baselines``): vita, spact, bdq.
    baselines: tuple[str, ...] = ("raw",)
    #: Phase 3 is repeated for seeds ``seed, seed + 1, ...``.
    seeds: int = 1
    #: Ablation (the paper's "sparsification only"): keep ratios at which the selector's kept tubelets are also
    #: judged with their original pixels. "Anonymization only" is STPrivacy at keep ratio 1.0 in ``keep_ratios``.
    sparsify_only: tuple[float, ...] = ()
    #: Keep the anonymized views phase 3 judged, as ``eval/views/<method>_a<ratio>-{train,test}.u8`` files (raw
    #: uint8 ``N x V x 3 x T x H x W``, shape in the ``.json`` beside; :class:`~stprivacy.data.disk.DiskVideos`
    #: opens them). Off: they live in anonymous files (or memory, for in-memory data) and vanish when judged.
    keep_views: bool = False
    #: Evaluate on another dataset than the anonymizer was trained on (the unseen-action settings); None = the
    #: training data.
    data: DataConfig | None = None

    def __post_init__(self) -> None:
        unknown = set(self.attackers) - {"vit", "frame", "ridge", "subspace"}
        if unknown or not self.attackers:
            raise ConfigError(f"evaluate.attackers must be a non-empty subset of [vit, frame, ridge, subspace], got "
                              f"{list(self.attackers)}")
        if self.subspace_rank < 1 or self.subspace_scores < 1 or self.subspace_reader not in ("quadratic", "mlp"):
            raise ConfigError("evaluate.subspace_rank and evaluate.subspace_scores must be >= 1 and "
                              "evaluate.subspace_reader quadratic or mlp")
        if self.ridge_cells < 1 or self.ridge_alpha <= 0 or self.ridge_moments not in (1, 2):
            raise ConfigError("evaluate.ridge_cells must be >= 1, evaluate.ridge_alpha > 0 and "
                              "evaluate.ridge_moments 1 or 2")
        for name in self.baselines:
            try:
                check_baseline(name)
            except ConfigError as exc:
                raise ConfigError(f"evaluate.baselines: {exc}") from None


@dataclass
class BaselinesConfig:
    """Training of the learned baselines (VITA, SPAct, BDQ) on the training split, each with its own objective
    (see :mod:`stprivacy.training.baselines`), before phase 3 judges them like every other method."""

    #: Adversarial epochs (after SPAct's reconstruction pre-training).
    epochs: int = 20
    batch_size: int = 32
    #: Peak learning rate; None = ``1e-3 * batch_size / 512``.
    lr: float | None = None
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    #: Families of the privacy models VITA and BDQ train against ("frame" and/or "vit").
    privacy_models: tuple[str, ...] = ("frame",)
    vita: VitaConfig = field(default_factory=VitaConfig)
    spact: SpactConfig = field(default_factory=SpactConfig)
    bdq: BdqConfig = field(default_factory=BdqConfig)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    #: Architecture of every video-level recognizer: phase 2's auxiliaries and phase 3's recognizers.
    recognizer: ModelConfig = field(default_factory=ModelConfig)
    frame_attacker: FrameAttackerConfig = field(default_factory=FrameAttackerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        e = self.evaluate
        if "ridge" in e.attackers and self.model.img_size % e.ridge_cells:
            raise ConfigError(f"evaluate.ridge_cells {e.ridge_cells} does not divide the frame size "
                              f"{self.model.img_size}: the ridge attacker averages frames over that grid")
        if self.train.twin_invariance and self.data.kind != "synthetic":
            raise ConfigError("train.twin_invariance needs counterfactual twins, which only the synthetic renderer "
                              "makes (data.kind: synthetic)")
        rank = self.train.phase2_output_rank or self.model.output_rank
        if self.train.linear_erasure and not 0 < rank <= MAX_ERASURE_RANK:
            raise ConfigError(f"train.linear_erasure works on the coefficients of a rank-limited decoder: set "
                              f"train.phase2_output_rank or model.output_rank to 1-{MAX_ERASURE_RANK}")
        if self.train.phase2_output_rank and self.model.output_rank:
            raise ConfigError("train.phase2_output_rank limits the full linear decoder; it cannot be combined "
                              "with model.output_rank (a decoder limited from phase 1 on)")


#: The largest decoder rank ``train.linear_erasure`` is built for: beyond it a clip's coefficient vector is too long
#: to fit an eraser on a training split (the paper's full-rank decoder has rank ``embed_dim``).
MAX_ERASURE_RANK = 16


def ratio_in(keep_ratio: float, ratios) -> bool:
    """Whether ``keep_ratio`` is one of ``ratios`` (up to float rounding: 0.7 parsed from YAML, from the command
    line or computed as 1 - 0.3 must all match)."""
    return any(abs(keep_ratio - r) < 1e-9 for r in ratios)


def peak_lr(section) -> float:
    """The peak learning rate of a training section (``train``, ``evaluate``, ``baselines``): its ``lr``, or the
    paper's rule ``1e-3 * batch_size / 512`` when ``lr`` is None."""
    return section.lr if section.lr is not None else 1e-3 * section.batch_size / 512


# ----------------------------------------------------------------------------------------------- (de)serialising
def to_dict(cfg) -> dict:
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            out[f.name] = to_dict(v)
        elif isinstance(v, tuple):
            out[f.name] = list(v)
        else:
            out[f.name] = v
    return out


def _convert(value, tp, where: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item, *rest) = typing.get_args(tp)
        return tuple(_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")


def from_dict(cls, data: dict, where: str = ""):
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    data = dict(data)
    base = None
    if cls is ModelConfig and "preset" in data:
        try:
            base = model_preset(data.pop("preset"))
        except KeyError as exc:
            raise ConfigError(f"{where}: {exc.args[0]}") from None
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {where or 'config'}; known: {sorted(names)}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        if base is not None:
            return dataclasses.replace(base, **kwargs)
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` strings to a nested dict (values parsed as YAML scalars)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: {exc}") from None
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return data


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("stprivacy").joinpath("configs").iterdir()
                  if p.name.endswith(".yaml"))


def read_yaml(preset_or_path: str | Path) -> dict:
    path = Path(preset_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        res = resources.files("stprivacy").joinpath("configs", f"{preset_or_path}.yaml")
        if not res.is_file():
            raise ConfigError(f"no preset or YAML file {preset_or_path!r}; presets: {', '.join(preset_names())}")
        text = res.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{preset_or_path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{preset_or_path}: the top level must be a mapping")
    return data


def load_experiment(preset_or_path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    data = apply_overrides(read_yaml(preset_or_path), overrides or [])
    return from_dict(ExperimentConfig, data)


def save_experiment(cfg: ExperimentConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
