"""Models: the STPrivacy anonymizer, the recognizers and attackers, their configs and presets."""

from stprivacy.lazy import exports

__getattr__, __all__ = exports(__name__, {
    "anonymizer": ["AnonymizerOutput", "STPrivacy"],
    "config": ["MODEL_PRESETS", "FrameAttackerConfig", "ModelConfig", "model_preset"],
    "recognizers": ["FrameAttacker", "KeepPatternAttacker", "VideoRecognizer"],
})
