"""The built-in synthetic privacy-action benchmark: procedurally rendered people whose action is their motion
and whose private attributes are their appearance. See ``docs/synthetic_dataset.md`` for the dataset card."""

from stprivacy.data.synthetic.config import ACTIONS, ATTRIBUTES, SYNTH_PRESETS, SynthConfig, synth_preset
from stprivacy.data.synthetic.render import RenderedClip, render_clip, sample_labels

__all__ = [
    "ACTIONS",
    "ATTRIBUTES",
    "SYNTH_PRESETS",
    "RenderedClip",
    "SynthConfig",
    "render_clip",
    "sample_labels",
    "synth_preset",
]
