"""ImageNet ViT weights from a local file, inflated to the video ViT (METHOD.md section 3). Nothing is downloaded.

Accepted: timm-style state dicts (``patch_embed.proj``, ``pos_embed``, ``blocks.*``, ``norm``) as ``.safetensors`` or
``.pth`` / ``.pt``, bare or wrapped in ``{"model": ...}`` (DeiT) or ``{"state_dict": ...}``, with or without a
``module.`` prefix. ``.pth`` files are read with ``torch.load(weights_only=True)``: nothing in them can execute.

Inflation:

* the 2D patch kernel ``D x 3 x p x p`` becomes the tubelet kernel ``D x 3 x t x p x p``, either repeated over the
  ``t`` frames and divided by ``t`` (``average``, the default: a static clip gives the 2D response) or placed in the
  centre frame (``center``);
* the position table loses its class / distillation tokens, is resized (bicubic) from its square grid to the
  tubelet grid and repeated over the temporal slices;
* blocks and the final norm map one to one; the classifier head, ``cls_token`` and ``dist_token`` have no
  counterpart (no CLS token here) and are reported as unexpected.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from stprivacy.errors import CheckpointError
from stprivacy.models.vit import VideoViT

log = logging.getLogger(__name__)


@dataclass
class PretrainedReport:
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"loaded {len(self.loaded)} tensors; missing {len(self.missing)}"
                f"{': ' + ', '.join(self.missing[:6]) if self.missing else ''}; unexpected {len(self.unexpected)}"
                f"{': ' + ', '.join(self.unexpected[:6]) if self.unexpected else ''}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"pretrained weights not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable or unsafe files end the same way
        raise CheckpointError(f"cannot read pretrained weights {path} safely: {exc}") from exc
    for wrapper in ("model", "state_dict", "model_state"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def inflate_patch_kernel(weight: torch.Tensor, frames: int, mode: str = "average") -> torch.Tensor:
    """``D x C x p x p`` -> ``D x C x t x p x p``."""
    if mode == "average":
        return weight.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames
    if mode == "center":
        out = torch.zeros(*weight.shape[:2], frames, *weight.shape[2:], dtype=weight.dtype)
        out[:, :, frames // 2] = weight
        return out
    raise ValueError(f"inflation mode must be 'average' or 'center', got {mode!r}")


def inflate_pos_embed(pos: torch.Tensor, grid_hw: tuple[int, int], slices: int) -> torch.Tensor:
    """``1 x (extra + g*g) x D`` -> ``1 x (slices * gh * gw) x D``: drop extra tokens, resize, repeat over time."""
    n, d = pos.shape[1], pos.shape[2]
    side = math.isqrt(n)
    while side * side != n and n > 0:  # drop class / distillation tokens at the front
        pos, n = pos[:, 1:], n - 1
        side = math.isqrt(n)
    if n == 0:
        raise CheckpointError("position table has no square grid of patch positions")
    grid = pos.reshape(1, side, side, d).permute(0, 3, 1, 2)
    if (side, side) != tuple(grid_hw):
        grid = F.interpolate(grid, size=grid_hw, mode="bicubic", align_corners=False)
    flat = grid.permute(0, 2, 3, 1).reshape(1, grid_hw[0] * grid_hw[1], d)
    return flat.repeat(1, slices, 1)


def with_pretrained(model):
    """Load ``model.cfg.pretrained`` (if set) into ``model.vit``; returns the model."""
    cfg = model.cfg
    if cfg.pretrained:
        report = load_imagenet_vit(model.vit, cfg.pretrained, cfg.pretrained_inflate)
        model.pretrained_report = report
    return model


def load_imagenet_vit(vit: VideoViT, path: str | Path, inflate: str = "average") -> PretrainedReport:
    """Load a 2D ImageNet ViT into ``vit`` (in place); returns what was loaded, missing and unexpected."""
    source = read_state_dict(path)
    target = vit.state_dict()
    report = PretrainedReport()
    converted: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key == "patch_embed.proj.weight":
            converted["embed.proj.weight"] = inflate_patch_kernel(value, vit.grid.tubelet[0], inflate)
        elif key == "patch_embed.proj.bias":
            converted["embed.proj.bias"] = value
        elif key == "pos_embed":
            converted["pos_embed"] = inflate_pos_embed(value, vit.grid.grid_hw, vit.grid.slices)
        elif key in target:
            converted[key] = value
        else:
            report.unexpected.append(key)
    for key, value in converted.items():
        if tuple(value.shape) != tuple(target[key].shape):
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, the model needs "
                                  f"{tuple(target[key].shape)} (another ViT size or patch size?)")
        target[key] = value.to(target[key].dtype)
        report.loaded.append(key)
    report.missing = sorted(set(target) - set(converted))
    vit.load_state_dict(target)
    log.info("pretrained %s: %s", path, report.summary())
    return report
