"""Models: the STPrivacy anonymizer, the recognizers and attackers, their configs and presets."""

from stprivacy.models.anonymizer import AnonymizerOutput, STPrivacy
from stprivacy.models.config import MODEL_PRESETS, FrameAttackerConfig, ModelConfig, model_preset
from stprivacy.models.recognizers import FrameAttacker, VideoRecognizer

__all__ = [
    "MODEL_PRESETS",
    "AnonymizerOutput",
    "FrameAttacker",
    "FrameAttackerConfig",
    "ModelConfig",
    "STPrivacy",
    "VideoRecognizer",
    "model_preset",
]
