"""Official HMDB51 and UCF101 train/test split files.

HMDB51: ``<class>_test_split<k>.txt``, lines ``<video>.avi <id>`` (1 train, 2 test, 0 unused). Names may start with
``#`` or ``-``: nothing is a comment. Class names are parsed with an anchored regex (``climb`` vs ``climb_stairs``).
UCF101: ``classInd.txt``, ``trainlist0k.txt`` (``<Class>/<file>.avi <idx>``) and ``testlist0k.txt`` (no label; the
class is the folder). CRLF line endings. The folder ``HandstandPushups`` holds ``v_HandStandPushups_*`` files: the
class always comes from the folder, never from the file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stprivacy.errors import LabelError

_HMDB_FILE = re.compile(r"^(.+)_test_split([123])\.txt$")


@dataclass
class Split:
    """Videos of one train/test split as (class, filename) pairs, with the sorted class list."""

    classes: list[str]
    train: list[tuple[str, str]]
    test: list[tuple[str, str]]


def read_hmdb51_split(split_dir: str | Path, split: int) -> Split:
    split_dir = Path(split_dir)
    if split not in (1, 2, 3):
        raise LabelError(f"HMDB51 split must be 1, 2 or 3, got {split}")
    files = {}
    for path in split_dir.iterdir():
        m = _HMDB_FILE.match(path.name)
        if m and int(m.group(2)) == split:
            files[m.group(1)] = path
    if not files:
        raise LabelError(f"no HMDB51 split-{split} files (<class>_test_split{split}.txt) in {split_dir}")
    train, test = [], []
    for cls in sorted(files):
        for n, line in enumerate(files[cls].read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise LabelError(f"{files[cls]}:{n}: expected '<video>.avi <0|1|2>', got {line!r}")
            if parts[1] == "1":
                train.append((cls, parts[0]))
            elif parts[1] == "2":
                test.append((cls, parts[0]))
    return Split(sorted(files), train, test)


def _is_index(text: str) -> bool:
    """An ASCII decimal index ("12"): ``str.isdigit`` alone also accepts digits ``int`` refuses, such as "¹"."""
    return text.isascii() and text.isdigit()


def read_ucf101_split(split_dir: str | Path, split: int) -> Split:
    split_dir = Path(split_dir)
    if split not in (1, 2, 3):
        raise LabelError(f"UCF101 split must be 1, 2 or 3, got {split}")
    class_ind = split_dir / "classInd.txt"
    if not class_ind.is_file():
        raise LabelError(f"missing {class_ind}")
    classes: dict[int, str] = {}
    for n, line in enumerate(class_ind.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not _is_index(parts[0]):
            raise LabelError(f"{class_ind}:{n}: expected '<index> <ClassName>', got {line!r}")
        classes[int(parts[0])] = parts[1]
    names = [classes[i] for i in sorted(classes)]
    known = set(names)

    def read_list(path: Path, labelled: bool) -> list[tuple[str, str]]:
        if not path.is_file():
            raise LabelError(f"missing {path}")
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            rel = parts[0]
            if "/" not in rel:
                raise LabelError(f"{path}:{n}: expected '<Class>/<file>.avi', got {line!r}")
            cls, filename = rel.split("/", 1)
            if cls not in known:
                raise LabelError(f"{path}:{n}: class {cls!r} is not in classInd.txt")
            if labelled and (len(parts) != 2 or classes.get(int(parts[1]) if _is_index(parts[1]) else -1) != cls):
                raise LabelError(f"{path}:{n}: label does not match the folder's class in classInd.txt")
            out.append((cls, filename))
        return out

    return Split(
        names,
        read_list(split_dir / f"trainlist0{split}.txt", labelled=True),
        read_list(split_dir / f"testlist0{split}.txt", labelled=False),
    )
