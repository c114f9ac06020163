"""End-to-end anonymization speed on a real video: decode + letterbox + model + encode, frames per second.

    python benchmarks/deploy_speed.py [--video ../shared/data/real_videos/vtest.avi] [--frames 160] [--threads 2]

For each preset (randomly initialised: speed does not depend on the weights) and keep ratio, the first ``--frames``
frames of the video are anonymized and written as H.264 to a temporary file; everything is timed in one process,
side by side. The model-only column times ``model.anonymize`` on the same windows, and its speed-up is measured
against the same model at a = 1.0 (every token kept). The batched column runs the same end-to-end path with
``--batch`` windows per forward pass (``stprivacy anonymize --batch``), whose output is the same frames.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stprivacy import STPrivacy
from stprivacy.data.video_io import VideoWriter, iter_frames, probe_fps
from stprivacy.deploy import Framing, anonymize_frames

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_videos" / "vtest.avi"


def end_to_end(model, video: Path, frames: int, keep_ratio: float, out: Path, batch: int = 1) -> float:
    t0 = time.perf_counter()
    source = itertools.islice(iter_frames(video), frames)
    with VideoWriter(out, fps=probe_fps(video)) as writer:
        n = 0
        for frame in anonymize_frames(model, source, keep_ratio, windows_per_batch=batch):
            writer.write(frame)
            n += 1
    return n / (time.perf_counter() - t0)


def model_only(model, windows: list[torch.Tensor], keep_ratio: float, reps: int = 3) -> float:
    best = float("inf")
    with torch.inference_mode():
        model.anonymize(windows[0], keep_ratio)
        for _ in range(reps):
            t0 = time.perf_counter()
            for w in windows:
                model.anonymize(w, keep_ratio)
            best = min(best, time.perf_counter() - t0)
    return len(windows) * model.cfg.num_frames / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", nargs="+", default=["tiny", "vit-t", "vit-s"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[1.0, 0.7, 0.5])
    parser.add_argument("--batch", type=int, default=8, help="windows per forward pass in the batched column")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fps_in = probe_fps(args.video)
    raw = list(itertools.islice(iter_frames(args.video), args.frames))
    print(f"{args.video.name}: {raw[0].shape[1]}x{raw[0].shape[0]} at {fps_in:g} fps, first {len(raw)} frames; "
          f"{args.threads} threads; torch {torch.__version__}")
    print(f"| preset | clip | keep ratio | end-to-end fps | x real time | end-to-end fps, {args.batch} windows "
          "per pass | model-only fps | model speed-up vs a=1 |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            torch.manual_seed(0)
            model = STPrivacy.from_preset(name).eval()
            cfg = model.cfg
            framing = Framing(cfg.img_size, *raw[0].shape[:2])
            t = cfg.num_frames
            windows = [framing.to_model(np.stack(raw[i:i + t])).unsqueeze(0) for i in range(0, len(raw) - t + 1, t)]
            base = model_only(model, windows, 1.0)
            for a in args.ratios:
                e2e = end_to_end(model, args.video, args.frames, a, Path(tmp) / f"{name}_{a}.mp4")
                batched = end_to_end(model, args.video, args.frames, a, Path(tmp) / f"{name}_{a}_b.mp4", args.batch)
                mo = base if a == 1.0 else model_only(model, windows, a)
                print(f"| {name} | {t}x{cfg.img_size}x{cfg.img_size} | {a:.2f} | {e2e:.1f} | {e2e / fps_in:.1f}x | "
                      f"{batched:.1f} | {mo:.1f} | {mo / base:.2f}x |")


if __name__ == "__main__":
    main()
