"""The generic manifest: a CSV with ``video`` (a path), ``label`` (the task label) and any attribute columns.

It covers every "video, task label, protected attributes" dataset (the synthetic benchmark on disk, CelebV-HQ
expressions, P-HVU, ...)::

    video,label,skin_color,face,gender,nudity,relationship
    train/000000_wave.mp4,wave,1,0,1,0,0

Relative paths are resolved against the manifest's folder (or a given root). A path that escapes that root
(``../``, an absolute path elsewhere) is refused unless ``allow_outside_root=True``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from stprivacy.errors import LabelError


@dataclass
class ManifestEntry:
    path: Path
    label: str
    attributes: list[int]


@dataclass
class Manifest:
    entries: list[ManifestEntry]
    attribute_names: tuple[str, ...]

    @property
    def classes(self) -> list[str]:
        return sorted({e.label for e in self.entries})


def write_manifest(path: str | Path, rows, attribute_names) -> Path:
    """``rows``: (relative video path, label, attribute values) triples."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["video", "label", *attribute_names])
        for video, label, attrs in rows:
            w.writerow([video, label, *[int(a) for a in attrs]])
    return path


def resolve_inside(root: Path, relative: str, allow_outside_root: bool = False) -> Path:
    """Join ``relative`` to ``root`` and refuse a result outside ``root`` (path traversal)."""
    if "\x00" in relative:
        raise LabelError(f"video path contains a NUL byte: {relative!r}")
    full = (root / relative).resolve()
    if not allow_outside_root and not full.is_relative_to(root.resolve()):
        raise LabelError(f"video path {relative!r} escapes the dataset root {root}; pass allow_outside_root to permit")
    return full


def read_manifest(path: str | Path, root: str | Path | None = None, allow_outside_root: bool = False) -> Manifest:
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read manifest {path}: {exc}") from exc
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header or header[:2] != ["video", "label"]:
        raise LabelError(f"{path}: the header must start with 'video,label', got {header}")
    attribute_names = tuple(header[2:])
    if len(set(header)) != len(header) or any(not a for a in attribute_names):
        raise LabelError(f"{path}: duplicate or empty column names in {header}")
    entries = []
    for n, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise LabelError(f"{path}:{n}: expected {len(header)} columns, got {len(row)}")
        video, label, *values = row
        if not video or not label:
            raise LabelError(f"{path}:{n}: empty video path or label")
        try:
            attrs = [int(v) for v in values]
        except ValueError:
            raise LabelError(f"{path}:{n}: attribute values must be 0 or 1, got {values}") from None
        if any(v not in (0, 1) for v in attrs):
            raise LabelError(f"{path}:{n}: attribute values must be 0 or 1, got {values}")
        entries.append(ManifestEntry(resolve_inside(root, video, allow_outside_root), label, attrs))
    if not entries:
        raise LabelError(f"{path}: manifest has no video")
    return Manifest(entries, attribute_names)
