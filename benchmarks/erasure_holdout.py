"""Does a run's linear eraser hold against attackers trained on clips it was not fitted on?

    python benchmarks/erasure_holdout.py runs/demo --keep-ratio 0.7 --out docs/results/erasure_holdout.jsonl

``train.linear_erasure`` fits each eraser on the run's training split, and phase 3 trains its attackers on the
same split, where every attribute group's mean coefficients are equal by construction. A deployed system's attacker
brings clips of its own. This splits the training split in two halves by a seeded draw: the eraser is fitted again
on half A alone, and a fresh phase-3 suite (the run's own ``evaluate`` settings, ``--attackers`` to narrow it) is
trained on half B, published through it, and tested on the test split. For comparison, the same suite on half B
published through the run's own eraser (fitted on both halves), and with no eraser. One JSON row per reading.
The test split is read here: use it on runs whose recipe was chosen on validation.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from stprivacy.data.build import build_datasets
from stprivacy.evaluation.phase3 import anonymize_clips, evaluate_clips
from stprivacy.models.erasure import decoder_basis, eraser_key
from stprivacy.pipeline import load_anonymizer
from stprivacy.training.erasure import clip_coefficients, fit_eraser
from stprivacy.training.run_dir import RunDir


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--keep-ratio", type=float, default=0.7)
    ap.add_argument("--attackers", nargs="+", help="phase-3 attackers to train (default: the run's)")
    ap.add_argument("--publications", nargs="+", choices=("half-a", "own", "none"), default=["half-a", "own", "none"],
                    help="which to judge: the eraser fitted on half A, the run's own eraser, no eraser")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = []
    torch.set_num_threads(args.threads)
    a = args.keep_ratio
    for path in args.runs:
        cfg = RunDir(path).config()
        cfg.runtime.progress, cfg.evaluate.seeds = False, 1
        if args.attackers:
            cfg.evaluate.attackers = tuple(args.attackers)
        model = load_anonymizer(path)
        key = eraser_key(model.keep_counts(a))
        if key not in model.erasers:
            raise SystemExit(f"{path}: no linear eraser at a = {a} (trained with train.linear_erasure?)")
        train, test, _ = build_datasets(cfg.data, cfg.seed, progress=False)
        half = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed + 4242))
        half_a, half_b = train.subset(half[: len(half) // 2]), train.subset(half[len(half) // 2:])
        own = model.erasers[key]
        basis, offset = decoder_basis(model.decode, model.cfg.embed_dim)
        x = clip_coefficients(model, half_a, a, basis, offset, cfg.runtime)
        attributes = half_a.attributes.float().repeat_interleave(half_a.views, dim=0)
        refit = fit_eraser(basis, offset, x, attributes, a, cfg.train.erasure_second_order,
                           cfg.train.erasure_distortion, cfg.train.erasure_guard_products)
        publications = {"half-a": ("eraser fitted on half A", refit), "own": ("the run's eraser (both halves)", own),
                        "none": ("no eraser", None)}
        for name, eraser in (publications[p] for p in args.publications):
            judged = copy.deepcopy(model)
            judged.erasers.clear()
            if eraser is not None:
                judged.set_eraser(a, eraser)
            started = time.time()
            r = evaluate_clips("stprivacy", a, anonymize_clips(judged, half_b, a, cfg.runtime),
                               anonymize_clips(judged, test, a, cfg.runtime), cfg, cfg.seed)
            row = {"run": str(path), "seed": cfg.seed, "keep_ratio": a, "publication": name,
                   "attackers_trained_on": f"half B ({len(half_b)} clips)", "action_top1": r.action_top1,
                   "worst_cmap": r.worst[1].cmap, "cmap_by_attacker": {k: v.cmap for k, v in r.attackers.items()},
                   "ap_by_attacker": {k: [round(p, 1) for p in v.per_attribute_ap] for k, v in r.attackers.items()},
                   "minutes": round((time.time() - started) / 60, 2)}
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.out:
                with args.out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    return rows


if __name__ == "__main__":
    main()
