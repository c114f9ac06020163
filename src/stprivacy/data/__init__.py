"""Data: synthetic and real video sources, all producing :class:`ClipSet` (see :mod:`stprivacy.data.clips`)."""

from stprivacy.lazy import exports

__getattr__, __all__ = exports(__name__, {"clips": ["ClipSet", "to_float"]})
