"""stprivacy: STPrivacy (ICCV 2023) privacy-preserving action recognition, end to end."""

from stprivacy.lazy import exports

__version__ = "0.1.0"

__getattr__, _names = exports(__name__, {
    "models.anonymizer": ["STPrivacy"],
    "models.config": ["ModelConfig", "model_preset"],
    "models.recognizers": ["FrameAttacker", "VideoRecognizer"],
})
__all__ = [*_names, "__version__"]
