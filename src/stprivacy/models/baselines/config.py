"""The settings of the baselines (METHOD.md section 7): their names and the typed configs of the learned ones.

A schema module: plain dataclasses, no torch, so :mod:`stprivacy.config` can validate an experiment without
building a network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Non-learned transforms (:mod:`.fixed`) and learned ones (trained first by :mod:`stprivacy.training.baselines`).
FIXED_NAMES = ("raw", "downsample2x", "downsample4x", "blur_weak", "blur_strong", "blackening", "frame_difference")
LEARNED_BASELINES = ("vita", "spact", "bdq")
BASELINES = (*FIXED_NAMES, *LEARNED_BASELINES)


def check_baseline(name: str) -> str:
    from stprivacy.errors import ConfigError

    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    return name


@dataclass
class VitaConfig:
    #: Channels of the first convolution and of each stride-2 stage (the last one is the residual width).
    widths: tuple[int, ...] = field(default_factory=lambda: (16, 32, 64))
    residual_blocks: int = 2
    #: Weight of the privacy budget term.
    gamma: float = 1.0
    #: Privacy models in the ensemble (each of every family in ``baselines.privacy_models``).
    ensemble: int = 2
    #: Re-initialise the privacy ensemble every this many adversarial epochs (0 = never).
    restart_every: int = 2

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) < 2:
            raise ValueError(f"vita.widths needs at least two entries, got {self.widths}")


@dataclass
class SpactConfig:
    #: UNet channels per level (each level halves the resolution).
    widths: tuple[int, ...] = field(default_factory=lambda: (16, 32, 64))
    #: Weight of the NT-Xent term.
    omega: float = 1.0
    temperature: float = 0.1
    #: Output size of the SimCLR projection head.
    projection_dim: int = 64
    #: Epochs of reconstruction pre-training (L1 to the input) before the adversarial epochs.
    pretrain_epochs: int = 1

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if not self.widths:
            raise ValueError("spact.widths needs at least one entry")


@dataclass
class BdqConfig:
    #: Initial blur standard deviation in pixels, and the largest the kernel can express (its radius is 3x this).
    sigma_init: float = 1.0
    sigma_max: float = 4.0
    #: Quantization levels (bins = levels - 1 learned edges).
    levels: int = 16
    #: Steepness of the soft staircase in training.
    beta: float = 50.0
    #: Weight of the entropy term.
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.levels < 2:
            raise ValueError(f"bdq.levels must be >= 2, got {self.levels}")
        if not 0 < self.sigma_init <= self.sigma_max:
            raise ValueError(f"bdq needs 0 < sigma_init <= sigma_max, got {self.sigma_init}, {self.sigma_max}")
