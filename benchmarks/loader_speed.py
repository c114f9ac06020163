"""Throughput of the data pipeline alone, on the CPU: decoding real videos into clips, and assembling batches.

    python benchmarks/loader_speed.py [--videos 96] [--workers 1 2] [--batch 32]

1. **Decoding**: ``--videos`` HMDB51-like files (320 x 240, 30 fps, 3 s of real footage cut from the OpenCV
   ``Megamind.avi`` sample in ``../shared/data/real_videos``, written as H.264) decoded into the paper's training
   clips (2 views of 16 frames at stride 2, 112 x 112) by ``decode_clipset`` with each worker count, then read again
   from the decoded-clip cache (memory-mapped).
2. **Batches**: ``iterate_batches`` over the decoded clips (index, random flips; uint8 -> float on the CPU path,
   left uint8 on the GPU path), in clips/s.

Training consumes clips at the rates ``gpu_bench.py`` prints; the loader is not the bottleneck when its rates here
exceed those (decoding happens once per run and is cached; batch assembly happens every step).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stprivacy.data.real import ClipSampling, VideoEntry, decode_clipset
from stprivacy.data.video_io import read_video, resize_short_side, write_video
from stprivacy.training.batches import iterate_batches

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_videos" / "Megamind.avi"


def make_videos(folder: Path, count: int) -> list[VideoEntry]:
    """``count`` 90-frame 320 x 240 videos, windows of the real source at different offsets."""
    frames, _ = read_video(SOURCE)
    frames = resize_short_side(frames, 240)
    x0 = (frames.shape[2] - 320) // 2
    frames = frames[:, :, x0:x0 + 320]
    entries = []
    for i in range(count):
        start = (i * 7) % (len(frames) - 90)
        path = write_video(folder / f"video_{i:03d}.mp4", frames[start:start + 90], fps=30)
        entries.append(VideoEntry(path, action=i % 51, attributes=np.zeros(5, dtype=np.int64), key=path.stem))
    return entries


def time_decode(entries, sampling, workers: int, cache_dir: Path | None) -> tuple[float, int]:
    t0 = time.perf_counter()
    clips = decode_clipset(entries, sampling, train=True, action_names=[str(i) for i in range(51)],
                           attribute_names=[str(i) for i in range(5)], cache_dir=cache_dir, progress=False,
                           workers=workers)
    return time.perf_counter() - t0, clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampling = ClipSampling(num_frames=16, stride=2, size=112, train_views=2)
    with tempfile.TemporaryDirectory() as tmp:
        entries = make_videos(Path(tmp) / "videos", args.videos)
        print(f"{args.videos} videos of 90 frames at 320x240 (real footage, H.264); clips of 16 frames at stride 2, "
              f"112x112, 2 views per video; torch {torch.__version__}, {args.threads} threads")
        print("| stage | workers | videos/s | clips/s |")
        print("|---|---|---|---|")
        clips = None
        for w in args.workers:
            seconds, clips = time_decode(entries, sampling, w, None)
            print(f"| decode (cold) | {w} | {len(entries) / seconds:.1f} | {2 * len(entries) / seconds:.1f} |")
        cache = Path(tmp) / "cache"
        time_decode(entries, sampling, max(args.workers), cache)  # fills the cache
        seconds, clips = time_decode(entries, sampling, 1, cache)
        print(f"| decoded-clip cache (memory-mapped) | - | {len(entries) / seconds:.1f} | "
              f"{2 * len(entries) / seconds:.1f} |")
        for as_uint8, what in ((False, "float, the CPU path"), (True, "uint8, the GPU path: converted on the GPU")):
            gen = torch.Generator().manual_seed(0)
            n = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 3.0:
                for batch in iterate_batches(clips, args.batch, shuffle=True, generator=gen, hflip=True,
                                             as_uint8=as_uint8):
                    n += len(batch["video"])
            seconds = time.perf_counter() - t0
            print(f"| batch assembly (batch {args.batch}, flips, {what}) | - | - | {n / seconds:.0f} |")


if __name__ == "__main__":
    main()
