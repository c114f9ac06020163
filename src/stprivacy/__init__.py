"""stprivacy: STPrivacy (ICCV 2023) privacy-preserving action recognition, end to end."""

from stprivacy.models import FrameAttacker, ModelConfig, STPrivacy, VideoRecognizer, model_preset

__version__ = "0.1.0"

__all__ = ["FrameAttacker", "ModelConfig", "STPrivacy", "VideoRecognizer", "__version__", "model_preset"]
