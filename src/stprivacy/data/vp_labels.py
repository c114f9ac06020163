"""VP-HMDB51 and VP-UCF101 privacy labels, shipped with the package (see ``labels/README.md``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from stprivacy.errors import LabelError

VP_ATTRIBUTES: tuple[str, ...] = ("skin_color", "face", "gender", "nudity", "relationship")
VP_TABLES = {"hmdb51": "vp_hmdb51_labels.csv", "ucf101": "vp_ucf101_labels.csv"}


@dataclass
class LabelTable:
    """Video-level labels keyed by ``<class>/<stem>`` (no extension)."""

    keys: list[str]
    actions: list[str]
    attributes: np.ndarray  # N x K int64
    attribute_names: tuple[str, ...]

    def __post_init__(self) -> None:
        self._index = {k: i for i, k in enumerate(self.keys)}
        if len(self._index) != len(self.keys):
            raise LabelError("duplicate video keys in label table")

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def row(self, key: str) -> np.ndarray:
        try:
            return self.attributes[self._index[key]]
        except KeyError:
            raise LabelError(f"no privacy label for video {key!r}") from None

    def positive_rates(self) -> dict[str, float]:
        return dict(zip(self.attribute_names, self.attributes.mean(0).round(4).tolist(), strict=True))


def video_key(class_dir: str, filename: str) -> str:
    """``<class>/<stem>``: how videos are matched to labels (the VP keys say .mp4, the files are .avi)."""
    return f"{class_dir}/{Path(filename).stem}"


def read_label_csv(path_or_file, attribute_names: tuple[str, ...] = VP_ATTRIBUTES) -> LabelTable:
    """Read a ``video,action,<attribute columns>`` CSV; raises :class:`LabelError` on any malformed row."""
    keys, actions, rows = [], [], []
    reader = csv.DictReader(path_or_file)
    missing = {"video", "action", *attribute_names} - set(reader.fieldnames or ())
    if missing:
        raise LabelError(f"label table lacks columns {sorted(missing)}")
    for line, rec in enumerate(reader, start=2):
        video = rec["video"]
        if "/" not in video:
            raise LabelError(f"line {line}: video {video!r} is not <class>/<file>")
        class_dir, filename = video.split("/", 1)
        try:
            values = [int(rec[a]) for a in attribute_names]
        except (TypeError, ValueError):
            raise LabelError(f"line {line}: attribute values must be 0 or 1") from None
        if any(v not in (0, 1) for v in values):
            raise LabelError(f"line {line}: attribute values must be 0 or 1, got {values}")
        keys.append(video_key(class_dir, filename))
        actions.append(rec["action"])
        rows.append(values)
    if not keys:
        raise LabelError("label table is empty")
    return LabelTable(keys, actions, np.array(rows, dtype=np.int64), attribute_names)


def load_vp_labels(dataset: str) -> LabelTable:
    """The shipped VP-HMDB51 (``"hmdb51"``) or VP-UCF101 (``"ucf101"``) table."""
    try:
        name = VP_TABLES[dataset]
    except KeyError:
        raise LabelError(f"no VP labels for {dataset!r}; choose one of {sorted(VP_TABLES)}") from None
    with resources.files("stprivacy.data").joinpath("labels").joinpath(name).open("r", newline="") as f:
        return read_label_csv(f)
