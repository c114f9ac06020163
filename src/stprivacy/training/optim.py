"""AdamW with the usual no-decay groups and layer-wise rates, and a warm-up + cosine schedule (the paper's
learning-rate rule is :func:`stprivacy.config.peak_lr`)."""

from __future__ import annotations

import math

import torch
from torch import nn


def trunk_layer(name: str, depth: int) -> int | None:
    """Where a parameter sits in a ViT trunk (``...vit.*``): 0 for the embedding and positions, ``i + 1`` for
    block ``i``, ``depth + 1`` for the final norm; None outside a trunk (token scorers, heads, CNNs)."""
    if name.startswith("vit."):
        rest = name[4:]
    elif ".vit." in name:
        rest = name.split(".vit.", 1)[1]
    else:
        return None
    if rest.startswith(("embed.", "pos_embed")):
        return 0
    if rest.startswith("blocks."):
        return int(rest.split(".")[1]) + 1
    return depth + 1


def _trunk_depth(model: nn.Module) -> int:
    return max((len(m.blocks) for m in model.modules() if hasattr(m, "blocks") and hasattr(m, "pos_embed")),
               default=0)


def param_groups(model: nn.Module, weight_decay: float, backbone_lr_scale: float = 1.0,
                 layer_decay: float = 1.0) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms and whatever the model declares in ``no_weight_decay()``;
    ViT-trunk parameters get ``lr_scale = backbone_lr_scale * layer_decay ** (depth + 1 - layer)`` (the released
    STPrivacy/DynamicViT recipe: predictors at the full rate, a slower backbone, deeper layers faster than
    shallow ones), everything else ``lr_scale = 1``."""
    skip: set[str] = set()
    for name, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):
            prefix = f"{name}." if name else ""
            skip |= {prefix + n for n in module.no_weight_decay()}
    depth = _trunk_depth(model)
    groups: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        layer = trunk_layer(name, depth)
        scale = 1.0 if layer is None else backbone_lr_scale * layer_decay ** (depth + 1 - layer)
        groups.setdefault((p.ndim > 1 and name not in skip, scale), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale}
            for (decay, scale), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1]))]


def fused_supported(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters: on CUDA always, on a CPU from torch 2.4."""
    devices = {p.device.type for p in params}
    return devices == {"cuda"} or (devices == {"cpu"} and torch.__version__ >= "2.4")


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, backbone_lr_scale: float = 1.0,
                   layer_decay: float = 1.0, fused: bool | None = None) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`. ``fused`` (default: where supported) updates every parameter in one kernel
    instead of a dozen per parameter: on the demo's ViT a training step is 15 % faster on a CPU
    (``benchmarks/train_speed.py``). The update is AdamW's either way (same maths, rounding aside)."""
    groups = param_groups(model, weight_decay, backbone_lr_scale, layer_decay)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    params = [p for g in groups for p in g["params"]]
    if fused is None:
        fused = bool(params) and fused_supported(params)
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), fused=fused or None)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                  min_factor: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to ``min_factor`` of the peak, stepped once per optimisation step."""
    total_steps = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
