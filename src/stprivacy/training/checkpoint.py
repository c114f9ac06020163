"""Checkpoints that cannot execute code and cannot be half-written.

A checkpoint named ``<stem>`` is two files:

* ``<stem>.safetensors``: the weights of one or more modules (keys ``<module>.<parameter>``), with the resolved
  config and the epoch in the safetensors metadata;
* ``<stem>.state-<n>.pt``: optimiser, scheduler and RNG states, read back with ``torch.load(weights_only=True)``,
  which refuses anything but tensors and plain containers. The weights file's metadata names the state file that
  belongs to it.

Each file is written to a temporary name in the same folder and renamed into place, so a crash or a full disk leaves
the previous checkpoint intact. Order: new state file, then the weights file (which points to it), then the old
state file is removed. A kill at any instant leaves a weights file whose state file exists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from stprivacy.errors import CheckpointError


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc


def save_checkpoint(stem: Path, modules: dict[str, nn.Module], state: dict | None = None,
                    metadata: dict | None = None) -> None:
    stem = Path(stem)
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create checkpoint folder {stem.parent}: {exc}") from exc
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous() for name, m in modules.items()
               for k, v in m.state_dict().items()}
    metadata = dict(metadata or {})
    state_name = None
    if state is not None:
        previous = {p.name for p in stem.parent.glob(f"{stem.name}.state-*.pt")}
        n = 0
        while f"{stem.name}.state-{n}.pt" in previous:
            n += 1
        state_name = f"{stem.name}.state-{n}.pt"
        _atomic(stem.parent / state_name, lambda p: torch.save(state, p))
        metadata["state_file"] = state_name
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    _atomic(stem.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p), metadata=meta))
    for old in stem.parent.glob(f"{stem.name}.state-*.pt"):
        if old.name != state_name:
            old.unlink(missing_ok=True)


def checkpoint_exists(stem: Path) -> bool:
    return Path(stem).with_suffix(".safetensors").is_file()


def read_metadata(stem: Path) -> dict:
    from safetensors import safe_open

    path = Path(stem).with_suffix(".safetensors")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    return {k: json.loads(v) for k, v in meta.items()}


def load_modules(stem: Path, modules: dict[str, nn.Module]) -> None:
    """Load the weights of ``modules`` from ``<stem>.safetensors``; every key must match."""
    path = Path(stem).with_suffix(".safetensors")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    for name, module in modules.items():
        prefix = f"{name}."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint {path} does not fit module {name!r}: {exc}") from exc


def load_state(stem: Path) -> dict:
    stem = Path(stem)
    name = read_metadata(stem).get("state_file")
    if name is None:
        raise CheckpointError(f"checkpoint {stem}.safetensors has no training state")
    path = stem.parent / name
    if not path.is_file():
        raise CheckpointError(f"training state not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable or untrusted file
        raise CheckpointError(f"cannot read training state {path} safely: {exc}") from exc
