"""Anonymize a video stream window by window: raw frames go in, only anonymized frames come out.

The stream is cut into consecutive windows of the model's clip length; each window is anonymized in inference mode
(top-k tubelets at the chosen keep ratio, dropped tubelets black) and written out before the next one is read, so
memory does not grow with the video's length. The last, shorter window is padded by repeating its last frame and
only its real frames are emitted. Nothing of the input container is copied: no metadata, no audio.

A model trained on clips sampled every ``s``-th frame (the real datasets' ``data.sampling.stride``, 2 by default)
sees motion at that time scale; fed consecutive frames it would see everything move ``s`` times slower. With
``stride = s`` a window of ``clip length x s`` frames is split into ``s`` interleaved clips (frames ``k, k + s, ...``),
each is anonymized as the model was trained to see it, and their frames are put back in order: every frame is
still anonymized exactly once.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from stprivacy.data.video_io import VideoWriter, iter_frames, probe_fps
from stprivacy.deploy.framing import Framing, Tiling
from stprivacy.errors import ConfigError, STPrivacyError
from stprivacy.layers.tubelets import kept_pixels
from stprivacy.models import STPrivacy
from stprivacy.runtime import RuntimeConfig

log = logging.getLogger(__name__)


def _windows(frames: Iterable[np.ndarray], length: int) -> Iterator[tuple[np.ndarray, int]]:
    """Consecutive windows of ``length`` frames; the last one padded, with its count of real frames."""
    buf: list[np.ndarray] = []
    for frame in frames:
        buf.append(frame)
        if len(buf) == length:
            yield np.stack(buf), length
            buf = []
    if buf:
        real = len(buf)
        buf += [buf[-1]] * (length - real)
        yield np.stack(buf), real


def _groups(windows: Iterator[tuple[np.ndarray, int]], size: int) -> Iterator[list[tuple[np.ndarray, int]]]:
    """Consecutive groups of ``size`` windows (the last one may be shorter)."""
    while group := list(itertools.islice(windows, size)):
        yield group


@torch.inference_mode()
def anonymize_frames(model: STPrivacy, frames: Iterable[np.ndarray], keep_ratio: float, *,
                     framing: Framing | Tiling | None = None, side_by_side: bool = False,
                     stride: int = 1, windows_per_batch: int = 1,
                     runtime: RuntimeConfig | None = None) -> Iterator[np.ndarray]:
    """Anonymize an iterable of H x W x 3 uint8 frames (a file, a camera) into anonymized frames, lazily.

    ``stride``: the temporal sampling stride the model was trained with (see the module's docstring).
    ``windows_per_batch``: windows anonymized in one forward pass (a GPU wants several; each window still gets
    exactly the clip it would get alone, and the stream is read that many windows ahead).
    ``runtime``: where the model runs and in which precision (default: the CPU in fp32; ``RuntimeConfig()``
    takes a GPU when there is one, in bf16 autocast there).
    With ``side_by_side`` every output frame shows raw | kept tubelets | anonymized, for inspection only.
    """
    if stride < 1:
        raise ConfigError(f"frame stride must be >= 1, got {stride}")
    if windows_per_batch < 1:
        raise ConfigError(f"windows per batch must be >= 1, got {windows_per_batch}")
    runtime = runtime or RuntimeConfig(device="cpu", precision="fp32")
    device = runtime.torch_device()
    model.to(device).eval()
    if model.publishes_noise():
        # the publication noise must not be predictable: from torch's fixed start-up seed (or any seed a caller
        # set) an attacker with this code could draw it again and subtract it. Reseed from the OS.
        torch.seed()
    cfg = model.cfg
    iterator = iter(frames)
    if framing is None:  # letterbox to the size of the first frame
        first = next(iterator, None)
        if first is None:
            return
        framing = Framing(cfg.img_size, first.shape[0], first.shape[1])
        iterator = itertools.chain([first], iterator)
    for group in _groups(_windows(iterator, cfg.num_frames * stride), windows_per_batch):
        clips = [window[k::stride] for window, _ in group for k in range(stride)]
        outs = iter(_anonymize_clips(model, framing, clips, keep_ratio, side_by_side, device, runtime))
        for window, real in group:
            parts = [next(outs) for _ in range(stride)]
            out = np.empty((len(window), *parts[0].shape[1:]), dtype=parts[0].dtype)
            for k, part in enumerate(parts):
                out[k::stride] = part
            yield from out[:real]


def _anonymize_clips(model: STPrivacy, framing: Framing | Tiling, clips: list[np.ndarray], keep_ratio: float,
                     side_by_side: bool, device: torch.device, runtime: RuntimeConfig) -> Iterator[np.ndarray]:
    """Clips of the model's length (T x H x W x 3 uint8 each), anonymized in one forward pass: each clip's
    anonymized frames (or inspection view), in order."""
    inputs = [framing.batch(frames) for frames in clips]  # 1 x ... (letterbox) or tiles x ... per clip
    with runtime.autocast(device):
        anonymized, keep = model.anonymize(torch.cat(inputs).to(device), keep_ratio)
    anonymized, keep = anonymized.float().cpu(), keep.cpu()
    start = 0
    for x in inputs:
        end = start + len(x)
        out = framing.unbatch(anonymized[start:end])
        if side_by_side:
            kept = framing.unbatch(kept_pixels(x, keep[start:end], model.grid.tubelet))
            out = np.concatenate([framing.unbatch(x), kept, out], axis=2)
        start = end
        yield out


def anonymize_file(model: STPrivacy, src: str | Path, dst: str | Path, keep_ratio: float, *,
                   output_scale: int = 1, side_by_side: bool = False, fps: float | None = None,
                   tile_scale: float | None = None, stride: int = 1, windows_per_batch: int = 1,
                   runtime: RuntimeConfig | None = None) -> int:
    """Anonymize one video file into an H.264 mp4; returns the number of frames written.

    ``tile_scale`` switches from letterboxing to tiling the frame (scaled by that factor) with model-size tiles;
    ``windows_per_batch`` and ``runtime`` as in :func:`anonymize_frames`.
    """
    src, dst = Path(src), Path(dst)
    fps = fps or probe_fps(src)
    frames = iter_frames(src)
    first = next(frames)
    if tile_scale is not None:
        if tile_scale <= 0:
            raise ConfigError(f"tile scale must be positive, got {tile_scale}")
        framing = Tiling(model.cfg.img_size, first.shape[0], first.shape[1], tile_scale)
    else:
        framing = Framing(model.cfg.img_size, first.shape[0], first.shape[1], output_scale)

    count = 0
    with VideoWriter(dst, fps=fps) as writer:
        for frame in anonymize_frames(model, itertools.chain([first], frames), keep_ratio, framing=framing,
                                      side_by_side=side_by_side, stride=stride,
                                      windows_per_batch=windows_per_batch, runtime=runtime):
            writer.write(frame)
            count += 1
    return count


def training_stride(run_dir: str | Path) -> int:
    """The temporal stride of the clips a run's anonymizer was trained on: ``data.sampling.stride`` for decoded
    videos, 1 for the synthetic benchmark (rendered frame by frame at its own rate)."""
    from stprivacy.training.run_dir import RunDir

    data = RunDir(run_dir).config().data
    return 1 if data.kind == "synthetic" else int(data.sampling.stride)


def pick_keep_ratio(run_dir: str | Path, max_cmap: float) -> float:
    """The largest evaluated keep ratio whose measured worst-case privacy cMAP is at most ``max_cmap``."""
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: run `stprivacy evaluate` first to measure the trade-off curve")
    report = json.loads(path.read_text())
    ok = [m for m in report["methods"] if m["name"] == "stprivacy" and m["privacy_cmap"] <= max_cmap]
    if not ok:
        curve = ", ".join(f"a={m['keep_ratio']}: {m['privacy_cmap']:.1f}" for m in report["methods"]
                          if m["name"] == "stprivacy")
        raise STPrivacyError(f"no evaluated keep ratio reaches privacy cMAP <= {max_cmap} ({curve})")
    best = max(ok, key=lambda m: m["keep_ratio"])
    log.info("keep ratio %.2f: measured worst-case cMAP %.2f, action top-1 %.2f", best["keep_ratio"],
             best["privacy_cmap"], best["action_top1"])
    return float(best["keep_ratio"])
