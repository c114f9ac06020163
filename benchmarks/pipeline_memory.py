"""Peak memory of phases 1-3 against the number of videos: a VP-UCF101-shaped stand-in, a tiny model.

    python benchmarks/pipeline_memory.py [--videos 100 400 1600] [--test-fraction 0.25]

For each size, in a fresh process: ``--videos`` training videos (48 frames at 128 x 171, the frame pool the
loader decodes HMDB51 / UCF101 into: every 2nd frame, short side 128) and ``test-fraction`` as many test videos
as 15 views of 16 x 112 x 112 (the protocol's 5 clips x 3 crops, as the decoder writes them), both on disk as the
real loaders leave them; then ``pipeline.train`` (phases 1 and 2, one epoch each, fresh clips) and
``pipeline.evaluate`` (phase 3: raw and STPrivacy at a = 0.7, one epoch per recognizer and attacker) on the tiny
model at 16 x 112 x 112. Pixel content is noise: memory does not depend on it.

Printed per size: the bytes of video the run handles (pool, test views, and the phase-3 views it writes), what
holding them in memory would take, and the measured peaks of the process: resident set (``VmHWM``) and its
anonymous part (``RssAnon``, sampled every 10 ms: the memory the process owns; the rest of the resident set is
page cache the kernel can take back). Flat peaks over a 16x range of videos are the claim.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

GIB = 2**30


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PeakSampler(threading.Thread):
    """Samples the anonymous resident memory of this process until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_anon_kib, self._done = 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_anon_kib = max(self.peak_anon_kib, status_kib("RssAnon"))
            time.sleep(0.01)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_anon_kib


def build_data(folder: Path, n_train: int, n_test: int):
    from stprivacy.data.clips import ClipSet
    from stprivacy.data.disk import DiskVideos, write_clips
    from stprivacy.data.pool import EpochClips, FramePool

    rng = np.random.default_rng(0)
    pool = FramePool.create(directory=folder)
    for _ in range(n_train):
        pool.append(rng.integers(0, 256, (48, 128, 171, 3), dtype=np.uint8))
    test = DiskVideos.create((n_test, 15, 3, 16, 112, 112), directory=folder)
    for i in range(n_test):
        write_clips(test, i * 15, torch.from_numpy(rng.integers(0, 256, (15, 3, 16, 112, 112), dtype=np.uint8)))
    names = tuple(f"action{i}" for i in range(10))
    attrs = ("skin", "face", "gender", "nudity", "relationship")

    def labels(n):
        return torch.arange(n) % 10, torch.from_numpy(rng.integers(0, 2, (n, 5)))

    train = ClipSet(EpochClips(pool, 16, 112, seed=0), *labels(n_train), names, attrs)
    return train, ClipSet(test, *labels(n_test), names, attrs), pool.nbytes


def worker(n_train: int, n_test: int) -> dict:
    from stprivacy import pipeline
    from stprivacy.config import load_experiment

    torch.set_num_threads(2)
    size = ["num_frames=16", "img_size=112", "tubelet=[2,16,16]"]
    over = [f"{s}.{o}" for s in ("model", "recognizer") for o in size] + [
        "data.sampling.train_views=2", "train.batch_size=16", "evaluate.batch_size=16", "evaluate.keep_ratios=[0.7]",
        "evaluate.seeds=1", "evaluate.baselines=[raw]", "runtime.progress=false"]
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        sampler = PeakSampler()
        sampler.start()
        t0 = time.perf_counter()
        train, test, pool_bytes = build_data(Path(tmp), n_train, n_test)
        run = pipeline.prepare_run(load_experiment("tiny", over), Path(tmp) / "run")
        pipeline.train(run, (train, test))
        pipeline.evaluate(run, (train, test))
        anon = sampler.stop()
    test_bytes = n_test * 15 * 3 * 16 * 112 * 112
    phase3_bytes = 2 * (n_train * 2 * 3 * 16 * 112 * 112 + test_bytes)  # fixed train views + raw + stprivacy views
    return {"videos": n_train, "test_videos": n_test, "pool_gib": pool_bytes / GIB, "test_gib": test_bytes / GIB,
            "in_memory_gib": (pool_bytes + test_bytes + phase3_bytes) / GIB,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB,
            "peak_anon_gib": anon * 1024 / GIB, "minutes": (time.perf_counter() - t0) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, nargs="+", default=[100, 400, 1600])
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--worker", type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    print(f"phases 1-3 on the tiny model at 16x112x112, 15 test views; torch {torch.__version__}, 2 threads")
    print("| training videos | test videos | frame pool (GiB) | test views (GiB) | in memory would be (GiB) | "
          "peak RSS (GiB) | peak anonymous RSS (GiB) | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.videos:
        n_test = max(1, round(n * args.test_fraction))
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), str(n_test)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {r['videos']} | {r['test_videos']} | {r['pool_gib']:.2f} | {r['test_gib']:.2f} | "
              f"{r['in_memory_gib']:.2f} | {r['peak_rss_gib']:.2f} | {r['peak_anon_gib']:.2f} | "
              f"{r['minutes']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
