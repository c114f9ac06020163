"""Reading the upstream VP label pickles without executing anything.

The authors ship the VP-HMDB51 / VP-UCF101 labels as pickles (``{"<class>/<stem>.mp4": ndarray(1, 5)}``). A pickle
can run arbitrary code, so it is read with an unpickler that resolves only the few numpy globals an array needs and
refuses every other one. The package ships the same labels as CSV; this reader exists to verify or refresh them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from stprivacy.data.vp_labels import VP_ATTRIBUTES, LabelTable, video_key
from stprivacy.errors import LabelError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name} in an untrusted pickle")


def load_vp_pickle(path: str | Path) -> LabelTable:
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = NumpyOnlyUnpickler(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise LabelError(f"cannot read {path} as a label pickle: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise LabelError(f"{path}: expected a non-empty dict of video -> label array")
    keys, actions, rows = [], [], []
    for key, value in sorted(data.items()):
        row = np.asarray(value).reshape(-1) if isinstance(value, np.ndarray) else None
        if not isinstance(key, str) or "/" not in key or row is None or row.size != len(VP_ATTRIBUTES):
            raise LabelError(f"{path}: malformed entry {key!r}")
        cls, filename = key.split("/", 1)
        keys.append(video_key(cls, filename))
        actions.append(cls)
        rows.append(row.astype(np.int64))
    return LabelTable(keys, actions, np.stack(rows), VP_ATTRIBUTES)
