"""Transformer parts shared by every video model: tubelets, keep-mask attention, blocks."""

from stprivacy.layers.attention import MaskedAttention, attention_allowed
from stprivacy.layers.block import Block, Mlp
from stprivacy.layers.tubelets import TubeletEmbed, TubeletGrid, tubelets_to_video, video_to_tubelets

__all__ = [
    "Block",
    "MaskedAttention",
    "Mlp",
    "TubeletEmbed",
    "TubeletGrid",
    "attention_allowed",
    "tubelets_to_video",
    "video_to_tubelets",
]
