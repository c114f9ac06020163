"""Transformer parts shared by every video model: tubelets, keep-mask attention, blocks."""

from stprivacy.lazy import exports

__getattr__, __all__ = exports(__name__, {
    "attention": ["MaskedAttention", "attention_allowed"],
    "block": ["Block", "Mlp"],
    "cells": ["cell_mean_features", "motion_energy_cells"],
    "tubelets": ["TubeletEmbed", "TubeletGrid", "keep_mask_pixels", "kept_pixels", "residual_video",
                 "shown_tubelets", "temporal_residual", "tubelets_to_video", "video_to_tubelets"],
})
