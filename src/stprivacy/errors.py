"""The project's documented errors. Everything a user can cause by bad input raises one of these."""


class STPrivacyError(Exception):
    """Base class of the errors this package raises on purpose."""


class VideoReadError(STPrivacyError, ValueError):
    """A video file is missing, empty, corrupt, truncated beyond use, or has no decodable frame."""


class VideoWriteError(STPrivacyError, OSError):
    """A video could not be written (unwritable folder, disk full, unusable frames)."""


class LabelError(STPrivacyError, ValueError):
    """A label, split or manifest file is malformed, or a video has no label."""


class ConfigError(STPrivacyError, ValueError):
    """A configuration file or override is invalid (unknown key, wrong type)."""


class CheckpointError(STPrivacyError, ValueError):
    """A checkpoint is missing, unreadable, untrusted or does not fit the model."""


class KeepRatioError(STPrivacyError, ValueError):
    """A keep ratio outside 0 < a <= 1, or one that would leave a temporal slice without any token."""
