"""ONNX export of the inference-mode anonymizer at a fixed keep ratio.

The keep ratio fixes the number of tokens per slice at each stage, so the exported graph has static shapes apart
from the batch axis. Export uses the TorchScript-based exporter (``dynamo=False``), which needs only ``onnx``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stprivacy.errors import STPrivacyError
from stprivacy.models import STPrivacy
from stprivacy.models.config import validate_keep_ratio


class InferenceAnonymizer(nn.Module):
    """``video (B x 3 x T x H x W, [0, 1]) -> (anonymized video, keep mask)`` at one keep ratio."""

    def __init__(self, model: STPrivacy, keep_ratio: float):
        super().__init__()
        self.model = model.eval()
        self.keep_ratio = validate_keep_ratio(keep_ratio)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model._forward_topk(video, self.keep_ratio)
        return out.video, out.keep_mask


def export_onnx(model: STPrivacy, path: str | Path, keep_ratio: float, opset: int = 17) -> Path:
    path = Path(path)
    cfg = model.cfg
    example = torch.rand(1, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
    wrapper = InferenceAnonymizer(model, keep_ratio)
    wrapper(example)  # validates the keep ratio with a clear error before tracing
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            torch.onnx.export(
                wrapper, (example,), str(path), dynamo=False, opset_version=opset,
                input_names=["video"], output_names=["anonymized", "keep_mask"],
                dynamic_axes={"video": {0: "batch"}, "anonymized": {0: "batch"}, "keep_mask": {0: "batch"}},
            )
    except OSError as exc:
        raise STPrivacyError(f"cannot write {path}: {exc}") from exc
    return path
