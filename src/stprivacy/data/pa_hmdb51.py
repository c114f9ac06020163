"""PA-HMDB51 (Wu et al., TPAMI 2020): frame-level privacy annotations turned into video-level binary labels.

The annotations are non-commercial: this package never ships them; point it at a folder of the upstream
``PrivacyAttributes/<action>.json`` files. A video is positive for an attribute if the attribute is identifiable in
any frame segment:

============  ==================================================  =================================
attribute     upstream values                                     positive when any segment has
============  ==================================================  =================================
skin_color    0 unidentifiable, 1 white, 2 brown/yellow, 3 black  a value >= 1
face          0 invisible, 1 partial, 2 complete                  a value >= 1
gender        0 cannot tell, 1 male, 2 female                     a value >= 1
nudity        0 long sleeves/pants, 1 short sleeves, 2 semi-nude  a value >= 1
relationship  0 cannot tell, 1 can tell                           a value >= 1
============  ==================================================  =================================

STPrivacy splits the 515 videos 60/40 at random without giving a seed; here the split is seeded and stratified by
nothing but the seed, so it is reproducible.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stprivacy.data.vp_labels import VP_ATTRIBUTES, LabelTable, video_key
from stprivacy.errors import LabelError


def _segment_positive(value) -> bool:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise LabelError(f"segment value must be an int or a list of ints, got {value!r}")
    return any(v >= 1 for v in values)


def _video_labels(entry: dict, where: str) -> list[int]:
    labels = []
    for attr in VP_ATTRIBUTES:
        segments = entry.get(attr)
        if not isinstance(segments, list) or not segments:
            raise LabelError(f"{where}: attribute {attr!r} has no segment list")
        positive = False
        for seg in segments:
            if not isinstance(seg, list) or len(seg) != 3:
                raise LabelError(f"{where}: {attr} segment must be [start, end, value], got {seg!r}")
            positive |= _segment_positive(seg[2])
        labels.append(int(positive))
    return labels


def load_pa_hmdb51(folder: str | Path) -> LabelTable:
    """Read every ``<action>.json`` in ``folder`` into video-level labels keyed ``<action>/<stem>``."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise LabelError(f"no PA-HMDB51 <action>.json files in {folder}")
    keys, actions, rows = [], [], []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LabelError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise LabelError(f"{path}: expected an object keyed by video file name")
        for name, entry in sorted(data.items()):
            if not isinstance(entry, dict):
                raise LabelError(f"{path}: entry {name!r} is not an object")
            keys.append(video_key(path.stem, name))
            actions.append(path.stem)
            rows.append(_video_labels(entry, f"{path.name}:{name}"))
    return LabelTable(keys, actions, np.array(rows, dtype=np.int64), VP_ATTRIBUTES)


def random_split(table: LabelTable, seed: int = 0, train_fraction: float = 0.6) -> tuple[list[int], list[int]]:
    """Seeded random train/test split of the table's rows (STPrivacy: 60/40)."""
    order = np.random.default_rng(seed).permutation(len(table))
    cut = int(round(train_fraction * len(table)))
    return sorted(order[:cut].tolist()), sorted(order[cut:].tolist())
