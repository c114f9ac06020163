"""Throughput of the data pipeline alone, on the CPU: decoding real videos into clips, and assembling batches.

    python benchmarks/loader_speed.py [--videos 96] [--workers 1 2] [--batch 32]

1. **Decoding once**: ``--videos`` HMDB51-like files (320 x 240, 30 fps, 3 s of real footage cut from the OpenCV
   ``Megamind.avi`` sample in ``../shared/data/real_videos``, written as H.264) decoded by ``decode_clipset`` with
   each worker count into the training frame pool (every 2nd frame, short side 128: fresh clips every epoch), and
   for comparison into 2 fixed views per video (the old path); then the pool reopened from the cache. The pool's
   bytes per video give the cache's disk size for HMDB51 and UCF101.
2. **Batches per epoch**: ``iterate_batches`` over the fresh clips of one draw (a temporal start and a 112 x 112
   crop cut per clip from the pool on disk, random flips; uint8 -> float on the CPU path, left uint8 on the GPU
   path), in clips/s, beside the same over fixed views read from disk.

Training consumes clips at the rates ``gpu_bench.py`` prints; the loader is not the bottleneck when its rates here
exceed those (decoding happens once per run and is cached; batch assembly happens every step).
"""

from __future__ import annotations

import argparse
import dataclasses
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


def time_decode(entries, sampling, workers: int, cache_dir: Path | None):
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
    fixed = dataclasses.replace(sampling, fresh_clips=False)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        entries = make_videos(Path(tmp) / "videos", args.videos)
        print(f"{args.videos} videos of 90 frames at 320x240 (real footage, H.264); clips of 16 frames at stride 2, "
              f"112x112; torch {torch.__version__}, {args.threads} threads")
        print("| stage | workers | videos/s | clips/s |")
        print("|---|---|---|---|")
        pool = views = None
        for w in args.workers:
            seconds, pool = time_decode(entries, sampling, w, None)
            print(f"| decode once into the frame pool (cold) | {w} | {len(entries) / seconds:.1f} | - |")
        seconds, views = time_decode(entries, fixed, max(args.workers), None)
        print(f"| decode into 2 fixed views (fresh_clips off) | {max(args.workers)} | {len(entries) / seconds:.1f} | "
              f"{2 * len(entries) / seconds:.1f} |")
        cache = Path(tmp) / "cache"
        time_decode(entries, sampling, max(args.workers), cache)  # fills the cache
        seconds, _ = time_decode(entries, sampling, 1, cache)
        print(f"| frame pool reopened from the cache | - | {len(entries) / seconds:.0f} | - |")
        for clips, source in ((pool, "fresh clips cut from the pool"), (views, "fixed views read from disk")):
            for as_uint8, what in ((False, "float, CPU path"), (True, "uint8, GPU path")):
                n, seconds = assemble(clips, args.batch, as_uint8)
                print(f"| batches of {args.batch}: {source} ({what}) | - | - | {n / seconds:.0f} |")
        per_video = pool.videos.pool.nbytes / len(entries)
        print()
        print(f"frame pool: {per_video / 2**20:.2f} MiB per 3 s video at 30 fps ({per_video / 45 / 1024:.1f} KiB per "
              "pooled frame)")
        for name, videos, seconds_each, fps in POOL_ESTIMATES:
            frames = seconds_each * fps / sampling.stride
            print(f"{name}: {videos} training videos x {seconds_each} s at {fps} fps -> "
                  f"{videos * frames * per_video / 45 / 2**30:.0f} GiB of frame pool")


#: Training videos of split 1 and their mean duration (HMDB51: about 3.2 s, at 30 fps; UCF101: 7.2 s at 25 fps, its
#: paper's figure), 320 x 240 both: the pool's disk size is proportional to their product.
POOL_ESTIMATES = (("HMDB51", 3570, 3.2, 30), ("UCF101", 9537, 7.2, 25))


def assemble(clips, batch: int, as_uint8: bool) -> tuple[int, float]:
    """Clips per second of one epoch's batches (at least 3 s of them, a new draw per pass)."""
    gen = torch.Generator().manual_seed(0)
    n, epoch = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 3.0:
        for b in iterate_batches(clips.at_draw((1, epoch)), batch, shuffle=True, generator=gen, hflip=True,
                                 as_uint8=as_uint8):
            n += len(b["video"])
        epoch += 1
    return n, time.perf_counter() - t0

if __name__ == "__main__":
    main()
