"""Typed configuration of the synthetic benchmark and its presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from stprivacy.errors import ConfigError

#: Action classes, each defined by motion alone.
ACTIONS: tuple[str, ...] = ("wave", "clap", "jump", "squat", "walk_left", "walk_right", "punch", "kick")
#: Private attributes, each defined by appearance alone, named as in VP-HMDB51 / VP-UCF101.
ATTRIBUTES: tuple[str, ...] = ("skin_color", "face", "gender", "nudity", "relationship")


@dataclass
class SynthConfig:
    """How clips are rendered. The defaults are the ``quick`` preset's; difficulty knobs are documented here."""

    num_frames: int = 8
    size: int = 64
    #: Figure height as a fraction of the frame height (the CPU probe: 1/3 was unlearnable, 3/4 learnable).
    figure_height: float = 0.72
    #: Multiplicative jitter of the figure's size, uniform in [1 - s, 1 + s].
    scale_jitter: float = 0.05
    #: Largest offset of the figure's centre from the frame centre, as a fraction of the frame size.
    position_jitter: float = 0.03
    #: Limb thickness as a fraction of the figure height.
    limb_width: float = 0.1
    #: Amplitude of the smooth background texture (0 = plain background).
    texture: float = 0.06
    #: Number of random distractor blobs in the background (clutter).
    clutter: int = 0
    #: Standard deviation of the per-pixel sensor noise (in [0, 1] units).
    noise: float = 0.02
    #: Action period range, in frames (one full motion cycle).
    period: tuple[float, float] = (6.0, 10.0)
    #: 0 = attributes independent of the action (default); 1 = drawn from an action-dependent prior
    #: (e.g. punch and kick usually come with a second person, jump with bare limbs), as in real data.
    attribute_correlation: float = 0.0

    def __post_init__(self) -> None:
        self.period = tuple(float(p) for p in self.period)
        if self.size < 16 or self.num_frames < 2:
            raise ValueError(f"clips must be at least 2 frames of 16x16, got {self.num_frames}x{self.size}")
        if not 0.0 <= self.attribute_correlation <= 1.0:
            raise ValueError(f"attribute_correlation must be in [0, 1], got {self.attribute_correlation}")


SYNTH_PRESETS: dict[str, SynthConfig] = {
    "quick": SynthConfig(),
    "paper": SynthConfig(num_frames=16, size=112),
    # 32 x 32 clips for tests and smoke runs of the tiny model.
    "tiny": SynthConfig(size=32),
    "hard": SynthConfig(position_jitter=0.15, scale_jitter=0.15, texture=0.12, clutter=4, noise=0.04),
}


def synth_preset(name: str) -> SynthConfig:
    try:
        return replace(SYNTH_PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown synthetic preset {name!r}; choose one of {sorted(SYNTH_PRESETS)} (experiment "
                          "presets such as synth-quick go to `stprivacy benchmark --preset`)") from None
