"""What phase 2's auxiliary action recognizer reads in the anonymizer's float output, and what survives publication.

    python benchmarks/publish_gap.py runs/demo --keep-ratio 0.7 --clips 300

For each run folder (with a phase-2 checkpoint): render the ``val`` stream of the run's seed (never the test
split), anonymize it at the keep ratio, and print the co-trained action recognizer's top-1 on the float output
(with the anonymizer's own keep mask) and on the published output (clamped to [0, 1], rounded to uint8, the mask
read off the video), the share of kept pixels outside [0, 1] and the share of kept tubelets painted black
(``evaluation.instruments.publication_gap``). A recognizer that reads much more of the float output than of the
published one was trained on a code phase 3's attackers never see (``train.bounded_output`` closes it).
"""

from __future__ import annotations

import argparse
import json

import torch

from stprivacy.data.synthetic import synth_preset
from stprivacy.data.synthetic.dataset import render_split
from stprivacy.evaluation.instruments import publication_gap
from stprivacy.models import STPrivacy
from stprivacy.training.checkpoint import load_modules
from stprivacy.training.phase2 import Adversaries
from stprivacy.training.run_dir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders with checkpoints/phase2.safetensors")
    parser.add_argument("--keep-ratio", type=float, default=0.7)
    parser.add_argument("--clips", type=int, default=300, help="validation clips to render")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for path in args.runs:
        run = RunDir(path)
        cfg = run.config()
        if cfg.data.kind != "synthetic":
            raise SystemExit(f"{path}: publish_gap renders the synthetic benchmark's val stream; this run trained "
                             f"on data.kind {cfg.data.kind!r}")
        stem = run.checkpoint("phase2")
        val = render_split(synth_preset(cfg.data.synth_preset), args.clips, cfg.seed, "val", cfg.data.workers,
                           False)
        model = STPrivacy(cfg.model, num_classes=len(val.action_names))
        adv = Adversaries(cfg, len(val.action_names), len(val.attribute_names))
        load_modules(stem, {"anonymizer": model, "adversaries": adv})
        gap = publication_gap(model, adv.action, val, args.keep_ratio, cfg.runtime)
        print(json.dumps({"run": str(path), "keep_ratio": args.keep_ratio, "clips": args.clips, **vars(gap)}))


if __name__ == "__main__":
    main()
