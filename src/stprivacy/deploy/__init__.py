"""Deployment: anonymize real videos of any length, frame by frame in constant memory."""

from stprivacy.deploy.anonymize import anonymize_file, anonymize_frames, pick_keep_ratio, training_stride
from stprivacy.deploy.framing import Framing, Tiling

__all__ = ["Framing", "Tiling", "anonymize_file", "anonymize_frames", "pick_keep_ratio", "training_stride"]
