"""Where sparsified inference spends its time: ``STPrivacy.anonymize`` at keep ratios 1.0 and 0.7, profiled op by op.

    python benchmarks/inference_profile.py --device cuda --precision bf16      # on a GPU
    python benchmarks/inference_profile.py --device cpu --preset synth --batch 8  # a smoke run

Why: on an H200 (benchmarks/README.md) sparsified inference at a = 0.7 was 1.57x faster than a = 1 in fp32 but
0.96x in bf16. This prints, for each keep ratio, the wall time per batch and the operators that take the most
device time (self time, summed over one profiled batch), so that the cost of the gathers, scatters and top-k
can be read beside the blocks'.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from gpu_bench import measure  # benchmarks/, the script's folder, is on sys.path
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from stprivacy.models import STPrivacy
from stprivacy.models.config import model_preset
from stprivacy.runtime import RuntimeConfig


def top_ops(prof, key: str, rows: int) -> list[dict]:
    """The ``rows`` operators (``aten::`` level) with the most ``key`` self time (microseconds, one call)."""
    events = sorted((e for e in prof.key_averages() if e.key.startswith("aten::")),
                    key=lambda e: getattr(e, key), reverse=True)
    return [{"op": e.key, "calls": e.count, "self_us": round(getattr(e, key), 1)} for e in events[:rows]]


def device_busy_us(prof) -> float:
    """Microseconds the GPU spent in kernels and copies during the profiled call: against the wall time it says
    whether the call is bound by the device or by the host launching its work."""
    return sum(e.self_device_time_total for e in prof.key_averages() if e.device_type == DeviceType.CUDA)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vit-s")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "bf16-weights"],
                    help="bf16 = autocast (fp32 weights cast at every call); bf16-weights = the model and the video "
                         "cast to bf16 once, no autocast")
    ap.add_argument("--ratios", type=float, nargs="+", default=[1.0, 0.7])
    ap.add_argument("--rows", type=int, default=12)
    ap.add_argument("--out", type=Path, help="JSON file for the figures")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cast = args.precision == "bf16-weights"
    runtime = RuntimeConfig(device=args.device, precision="fp32" if cast else args.precision, progress=False)
    torch.manual_seed(0)
    cfg = model_preset(args.preset)
    model = STPrivacy(cfg).to(device).eval()
    video = torch.rand(args.batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size, device=device)
    if cast:
        model, video = model.to(torch.bfloat16), video.to(torch.bfloat16)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    report = {"preset": args.preset, "batch": args.batch, "precision": args.precision, "ratios": {}}
    for a in args.ratios:
        @torch.inference_mode()
        def call(a=a):
            with runtime.autocast(device):
                model.anonymize(video, a)

        seconds = measure(call, device, steps=10)
        with profile(activities=activities) as prof:
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        cuda = device.type == "cuda"
        entry = {"ms_per_batch": 1000 * seconds, "clips_per_s": args.batch / seconds,
                 "device_busy_ms": device_busy_us(prof) / 1000 if cuda else None,
                 "host_ops": top_ops(prof, "self_cpu_time_total", args.rows),
                 "device_ops": top_ops(prof, "self_device_time_total", args.rows) if cuda else []}
        report["ratios"][str(a)] = entry
        busy = f", device busy {entry['device_busy_ms']:.2f} ms" if cuda else ""
        print(f"a = {a}: {1000 * seconds:.2f} ms per batch of {args.batch} ({args.batch / seconds:.0f} clips/s), "
              f"{args.precision}{busy}")
        for side in ("device_ops", "host_ops"):
            print(f" {side.replace('_', ' ')} (self time, one profiled call):")
            for op in entry[side]:
                print(f"  {op['self_us']:>10.1f} us  {op['calls']:>5d} x  {op['op']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
