"""Inference speed of the STPrivacy anonymizer at several keep ratios, against the same model keeping every token.

    python benchmarks/model_speed.py [--threads 2] [--batch 1] [--reps 5] [--presets vit-t vit-s]

Every configuration is timed side by side in one process: min over ``--reps`` timed runs after a warm-up.
The FLOPs of one forward pass are counted with ``torch.utils.flop_counter`` (matrix products and convolutions).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from stprivacy import STPrivacy


def time_forward(model: STPrivacy, video: torch.Tensor, keep_ratio: float, reps: int) -> float:
    with torch.inference_mode():
        model.anonymize(video, keep_ratio)  # warm-up
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            model.anonymize(video, keep_ratio)
            best = min(best, time.perf_counter() - t0)
    return best


def count_flops(model: STPrivacy, video: torch.Tensor, keep_ratio: float) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.anonymize(video, keep_ratio)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["vit-t", "vit-s"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[1.0, 0.7, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, min of {args.reps} runs")
    print("| preset | keep ratio a | tokens kept (last stage) | time per clip (ms) | speed-up vs keep-all | GFLOP "
          "| GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.presets:
        torch.manual_seed(0)
        model = STPrivacy.from_preset(name).eval()
        cfg = model.cfg
        video = torch.rand(args.batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
        base = time_forward(model, video, 1.0, args.reps)
        for a in args.ratios:
            t = base if a == 1.0 else time_forward(model, video, a, args.reps)
            flops = count_flops(model, video, a)
            _, mask = model.anonymize(video[:1], a)
            print(f"| {name} | {a:.2f} | {int(mask.sum())} of {mask.numel()} | {1e3 * t / args.batch:.1f} | "
                  f"{base / t:.2f}x | {flops / 1e9 / args.batch:.2f} | {flops / t / 1e9:.1f} |")


if __name__ == "__main__":
    main()
