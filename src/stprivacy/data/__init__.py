"""Data: the synthetic benchmark, video I/O, real datasets (HMDB51, UCF101, PA-HMDB51, manifests), clip sets."""

from stprivacy.data.clips import ClipSet, to_float

__all__ = ["ClipSet", "to_float"]
