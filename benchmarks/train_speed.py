"""Training throughput of the demo's networks on the CPU, the current code against its two slower predecessors.

    python benchmarks/train_speed.py [--preset synth-quick] [--clips 320] [--reps 2] [--threads 2]

One epoch over ``--clips`` rendered clips of the preset, for each workload the demo runs: phase 1, phase 2
(anonymizer + auxiliary recognizers, alternating), and a phase-3 fit of the ViT recognizer and of the frame-CNN
attacker. Every workload runs under three variants, side by side in one process, alternating, best of ``--reps``:

* ``conv3d, for-loop AdamW``: the tubelet embedding as ``Conv3d`` on a separately standardised video, AdamW's
  per-parameter update (this project until the change that added this benchmark);
* ``conv3d, fused AdamW``: the same with torch's fused AdamW kernel;
* ``current``: fused AdamW and the tubelet embedding as one matrix product with standardisation folded into its
  weights (:class:`stprivacy.layers.TubeletEmbed`).

The slower variants are reproduced by patching the two functions, so all three run the same training loops.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from stprivacy.config import load_experiment
from stprivacy.data.build import build_datasets
from stprivacy.layers.tubelets import TubeletEmbed
from stprivacy.models import STPrivacy, VideoRecognizer
from stprivacy.models.recognizers import build_attacker
from stprivacy.training import optim
from stprivacy.training.phase1 import train_phase1
from stprivacy.training.phase2 import train_phase2
from stprivacy.training.run_dir import RunDir
from stprivacy.training.supervised import FitConfig, fit


def _conv3d_embed(self: TubeletEmbed, video: torch.Tensor) -> torch.Tensor:
    """The embedding as it was: standardise the video, then the convolution."""
    if self.standardize:
        video = (video - self.mean) / self.std
    return F.conv3d(video, self.proj.weight, self.proj.bias, stride=self.grid.tubelet).flatten(2).transpose(1, 2)


@contextmanager
def variant(name: str):
    embed, supported = TubeletEmbed.forward, optim.fused_supported
    try:
        if name != "current":
            TubeletEmbed.forward = _conv3d_embed
        if name.endswith("for-loop AdamW"):
            optim.fused_supported = lambda params: False
        yield
    finally:
        TubeletEmbed.forward, optim.fused_supported = embed, supported


VARIANTS = ("conv3d, for-loop AdamW", "conv3d, fused AdamW", "current")


def workloads(cfg, clips):
    fit_cfg = FitConfig(epochs=1, batch_size=cfg.evaluate.batch_size, lr=1e-3)
    n_act, n_att = len(clips.action_names), len(clips.attribute_names)

    def phase(train_fn, epochs_key):
        def run():
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = RunDir(Path(tmp) / "run")
                run_dir.create(cfg)
                setattr(cfg.train, epochs_key, 1)
                model = STPrivacy(cfg.model, num_classes=n_act)
                if train_fn is train_phase2:
                    train_phase2(model, clips, cfg, run_dir)
                else:
                    train_phase1(model, clips, cfg, run_dir)
        return run

    return {
        "phase 1": phase(train_phase1, "phase1_epochs"),
        "phase 2": phase(train_phase2, "phase2_epochs"),
        "phase 3 ViT recognizer": lambda: fit(VideoRecognizer(cfg.recognizer, n_act), clips, "action", fit_cfg,
                                              cfg.runtime),
        "phase 3 frame CNN": lambda: fit(build_attacker("frame", cfg.recognizer, cfg.frame_attacker, n_att), clips,
                                         "privacy", fit_cfg, cfg.runtime),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synth-quick")
    parser.add_argument("--clips", type=int, default=320)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_experiment(args.preset, [f"data.train_size={args.clips}", "data.test_size=8", "runtime.device=cpu",
                                        "runtime.progress=false"])
    clips, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    best: dict[tuple[str, str], float] = {}
    for name, work in workloads(cfg, clips).items():
        work()  # warm-up: first-call allocations and kernel selection
        for _ in range(args.reps):
            for v in VARIANTS:
                torch.manual_seed(0)
                with variant(v):
                    t0 = time.perf_counter()
                    work()
                    dt = time.perf_counter() - t0
                best[name, v] = min(best.get((name, v), float("inf")), dt)
    print(f"{args.preset}: one epoch over {args.clips} clips, batch {cfg.train.batch_size}, {args.threads} threads, "
          f"best of {args.reps}\n")
    print("| workload | " + " | ".join(f"{v} (clips/s)" for v in VARIANTS) + " | speed-up, current vs first |")
    print("|---|" + "---|" * (len(VARIANTS) + 1))
    for name in workloads(cfg, clips):
        rates = [args.clips / best[name, v] for v in VARIANTS]
        print(f"| {name} | " + " | ".join(f"{r:.0f}" for r in rates) + f" | {rates[-1] / rates[0]:.2f}x |")


if __name__ == "__main__":
    main()
