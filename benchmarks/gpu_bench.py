"""Training and inference throughput of the paper-scale models on one GPU, fp32 against bf16.

    python benchmarks/gpu_bench.py                 # vit-s at 16x112x112, batch 32, on cuda (under 5 minutes)
    python benchmarks/gpu_bench.py --device cpu --preset tiny --batch 2 --steps 1    # a smoke run anywhere

For each precision it measures, on random clips already on the device (the loader is benchmarked separately by
``loader_speed.py``):

* inference: ``STPrivacy.anonymize`` at keep ratios 1.0 and 0.7 (clips/s);
* one training step of phase 1 (anonymizer, action CE + keep-ratio loss), phase 2 (anonymizer step against an
  action ViT and a privacy ViT, then their own step) and phase 3 (a fresh ViT recognizer; the per-frame CNN
  attacker), each with its optimizer step (clips/s);
* FLOPs of each, counted once with ``torch.utils.flop_counter`` (matrix products, convolutions, attention), and
  the achieved fraction of the GPU's dense peak for that precision (a table of known GPUs; ``--peak-tflops`` for
  others). fp32 runs with TF32 off (PyTorch's default), so its peak is the plain FP32 one.

Figures go to stdout as a Markdown table and to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from stprivacy.config import ExperimentConfig
from stprivacy.losses import action_loss, privacy_loss
from stprivacy.models import FrameAttacker, STPrivacy, VideoRecognizer, model_preset
from stprivacy.runtime import RuntimeConfig
from stprivacy.training.optim import make_optimizer
from stprivacy.training.phase1 import phase1_step
from stprivacy.training.phase2 import Adversaries, train_step

#: Dense peak TFLOP/s (FP32 without tensor cores, BF16 tensor cores) by GPU name; SXM parts where there are two.
PEAK_TFLOPS = {
    "H200": {"fp32": 67.0, "bf16": 989.0},
    "H100 PCIe": {"fp32": 51.0, "bf16": 756.0},
    "H100 NVL": {"fp32": 60.0, "bf16": 835.0},
    "H100": {"fp32": 67.0, "bf16": 989.0},
    "A100": {"fp32": 19.5, "bf16": 312.0},
    "L40S": {"fp32": 91.6, "bf16": 362.0},
    "L4": {"fp32": 30.3, "bf16": 121.0},
    "A10": {"fp32": 31.2, "bf16": 125.0},
}
NUM_ACTIONS, NUM_ATTRIBUTES = 51, 5  # VP-HMDB51


def peak_for(device: torch.device, override: float | None) -> dict[str, float] | None:
    if override:
        return {"fp32": override, "bf16": override}
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device: torch.device, steps: int, warmup: int = 3) -> float:
    """Seconds per call: mean over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / steps


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def training_steps(cfg: ExperimentConfig, batch: int, device: torch.device, runtime: RuntimeConfig) -> dict:
    """One training step per phase, as closures over models and a random batch on ``device``."""
    cfg.runtime = runtime  # phase 2's step reads device and precision from the config
    video = torch.rand(batch, 3, cfg.model.num_frames, cfg.model.img_size, cfg.model.img_size, device=device)
    data = {"video": video, "action": torch.randint(NUM_ACTIONS, (batch,), device=device),
            "attributes": torch.randint(2, (batch, NUM_ATTRIBUTES), device=device)}
    f = STPrivacy(cfg.model, num_classes=NUM_ACTIONS).to(device).train()
    forward = runtime.compiled(f)
    f_opt = make_optimizer(f, 1e-4, 0.05)
    adv = Adversaries(cfg, NUM_ACTIONS, NUM_ATTRIBUTES).to(device).train()
    adv_opt = make_optimizer(adv, 1e-4, 0.05)
    rec = VideoRecognizer(cfg.recognizer, NUM_ACTIONS).to(device).train()
    rec_opt = make_optimizer(rec, 1e-4, 0.05)
    cnn = FrameAttacker(NUM_ATTRIBUTES, cfg.frame_attacker).to(device).train()
    cnn_opt = make_optimizer(cnn, 1e-4, 0.05)

    def step(opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def phase1():
        with runtime.autocast(device):
            losses = phase1_step(forward, f.stage_ratios(), f.grid.tubelet, data, 0.0)
        step(f_opt, losses["total"])

    def phase2():  # as in training: the anonymizer step, then the recognizers' step on its detached output
        train_step(f, forward, adv, data, cfg, {"anonymizer": f_opt, "adversaries": adv_opt}, cfg.model.keep_ratio)

    def phase3_vit():
        with runtime.autocast(device):
            loss = action_loss(rec(video).float(), data["action"])
        step(rec_opt, loss)

    def phase3_cnn():
        with runtime.autocast(device):
            loss = privacy_loss(cnn(video).float(), data["attributes"])
        step(cnn_opt, loss)

    @torch.inference_mode()
    def infer(a):
        f.eval()
        with runtime.autocast(device):
            f.anonymize(video, a)
        f.train()

    return {"phase 1 step": phase1, "phase 2 step": phase2, "phase 3 ViT recognizer step": phase3_vit,
            "phase 3 frame-CNN attacker step": phase3_cnn,
            "inference a=1.0": lambda: infer(1.0), "inference a=0.7": lambda: infer(0.7)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="vit-s", help="model preset of the anonymizer and the recognizers")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the anonymizer's forward")
    parser.add_argument("--peak-tflops", type=float, help="dense peak of this device, for GPUs not in the table")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON figures")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: pass --device cpu for a smoke run")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = peak_for(device, args.peak_tflops)
    cfg = ExperimentConfig(model=model_preset(args.preset), recognizer=model_preset(args.preset))
    results = []
    for precision in args.precisions:
        runtime = RuntimeConfig(device=args.device, precision=precision, compile=args.compile, progress=False)
        torch.manual_seed(0)
        for what, fn in training_steps(cfg, args.batch, device, runtime).items():
            flops = count_flops(fn)
            seconds = measure(fn, device, args.steps)
            tflops = flops / seconds / 1e12
            results.append({"what": what, "precision": precision, "clips_per_s": args.batch / seconds,
                            "gflop_per_clip": flops / args.batch / 1e9, "tflop_per_s": tflops,
                            "peak_fraction": tflops / peak[precision] if peak else None})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report = {"device": name, "torch": torch.__version__, "preset": args.preset, "batch": args.batch,
              "steps": args.steps, "compile": args.compile, "peak_tflops": peak, "results": results}
    print(f"{name}, torch {torch.__version__}, {args.preset} at {cfg.model.num_frames}x{cfg.model.img_size}x"
          f"{cfg.model.img_size}, batch {args.batch}, mean of {args.steps} steps")
    print("| measurement | precision | clips/s | GFLOP/clip | TFLOP/s | of peak |")
    print("|---|---|---|---|---|---|")
    for r in results:
        frac = f"{100 * r['peak_fraction']:.1f} %" if r["peak_fraction"] is not None else "n/a"
        print(f"| {r['what']} | {r['precision']} | {r['clips_per_s']:.1f} | {r['gflop_per_clip']:.2f} | "
              f"{r['tflop_per_s']:.2f} | {frac} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu_bench_{name.replace(' ', '_').replace('/', '_') or 'device'}_{args.preset}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"figures: {path}")
    return report


if __name__ == "__main__":
    main()
