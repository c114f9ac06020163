"""A queue of whole-recipe runs on the synthetic benchmark, judged on the validation split, one table row each.

    python benchmarks/recipe_study.py --out docs/results/recipe_study.jsonl \
        --recipe paper= --recipe critic=train.phase1_critic=1.0 --phases 12 --seeds 0 1 2

A recipe is ``name=override;override;...`` over the base preset (default ``synth-quick``). For each recipe and
seed: phases 1 (and 2) on the training split, the instruments of every epoch (head top-1 / auxiliary recognizers
on validation, actor coverage), then, with ``--probe``, the phase-3 suite on validation: a fresh action ViT and
fresh attackers trained on the anonymized training split, tested on the anonymized validation split. The test
split is never rendered here. Each row (config overrides, seed, every reading, minutes) is appended to ``--out``
as one JSON line, so a queue can be interrupted and its table read at any time.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from stprivacy.config import load_experiment, peak_lr
from stprivacy.data.build import split_validation
from stprivacy.data.synthetic import synth_preset
from stprivacy.data.synthetic.dataset import render_split
from stprivacy.evaluation.instruments import coverage_of, inference_masks, keep_pattern_leak, probe_adversaries
from stprivacy.evaluation.leakage import mask_only_view
from stprivacy.evaluation.phase3 import anonymize_clips, evaluate_clips
from stprivacy.losses import privacy_loss
from stprivacy.models import STPrivacy
from stprivacy.pipeline import phase2_clips
from stprivacy.runtime import seed_everything
from stprivacy.training.batches import iterate_batches
from stprivacy.training.erasure import fit_run_erasers
from stprivacy.training.optim import make_optimizer
from stprivacy.training.phase1 import train_phase1
from stprivacy.training.phase2 import train_phase2
from stprivacy.training.run_dir import RunDir


def parse_recipe(text: str) -> tuple[str, list[str]]:
    name, _, rest = text.partition("=")
    return name, [o for o in rest.split(";") if o]


#: Overrides that change phase 1; recipes that agree on them share one phase-1 run per seed.
PHASE1_KEYS = ("model.", "train.phase1", "train.keep_ratio_range", "train.lr", "train.batch_size", "data.")
_phase1_cache: dict[tuple, dict] = {}


def catch_up(model: STPrivacy, adv, train, val, cfg, checkpoints: list[int]) -> dict[str, dict[int, float]]:
    """How far behind the final anonymizer phase 2's privacy recognizers are: they keep training on its published
    output (the anonymizer frozen, as phase 3's attackers train) and their worst validation cMAP is read after each
    number of batches in ``checkpoints``; then the same for freshly initialised recognizers. A co-trained curve
    that climbs to the fresh one within a few batches means the anonymizer was only one step ahead of them."""
    a, runtime = cfg.model.keep_ratio, cfg.runtime
    published_train = anonymize_clips(model, train, a, runtime)
    published_val = anonymize_clips(model, val, a, runtime)
    curves = {}
    for name in ("cotrained", "fresh"):
        if name == "fresh":
            adv.privacy.restart()
        views = adv.privacy_views()
        opt = make_optimizer(adv.privacy, peak_lr(cfg.train), cfg.train.weight_decay)
        gen = torch.Generator().manual_seed(cfg.seed + 99)
        curve = {0: probe_adversaries(adv.action, views, published_val, runtime)[1]}
        for v in views:
            v.train()  # probe_adversaries puts each model back in the mode it found it in
        step = 0
        while step < max(checkpoints):
            for batch in iterate_batches(published_train, cfg.train.batch_size, shuffle=True, generator=gen):
                loss = sum(privacy_loss(v(batch["video"], batch["keep_mask"]).float(), batch["attributes"])
                           for v in views)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step in checkpoints:
                    curve[step] = probe_adversaries(adv.action, views, published_val, runtime)[1]
                if step >= max(checkpoints):
                    break
        curves[name] = curve
    return curves


def run_recipe(base: str, overrides: list[str], seed: int, phases: str, probe: bool, data: dict,
               probe_ratios: list[float] | None = None, catchup: list[int] | None = None,
               mask_probe: bool = False) -> dict:
    cfg = load_experiment(base, [*overrides, f"seed={seed}", "runtime.progress=false"])
    cfg.runtime.apply_threads()
    train, val = data["train"], data["val"]
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "run")
        run.create(cfg)
        seed_everything(seed)
        model = STPrivacy(cfg.model, num_classes=len(train.action_names))
        key = (seed, *sorted(o for o in overrides if o.startswith(PHASE1_KEYS)))
        if key in _phase1_cache:
            model.load_state_dict(_phase1_cache[key])
        else:
            train_phase1(model, train, cfg, run, val)
            _phase1_cache[key] = copy.deepcopy(model.state_dict())
        adv = None
        if "2" in phases:
            model, adv = train_phase2(model, phase2_clips(train, cfg), cfg, run, val)
            if cfg.train.linear_erasure:  # as pipeline.train does: on the phase-2 training clips
                fit_run_erasers(model, train, cfg)
        epochs = [e for e in run.read_log() if e["event"] == "epoch"]
    row = {"overrides": overrides, "seed": seed, "phases": phases, "epochs": epochs}
    if catchup and adv is not None:
        row["catchup"] = catch_up(model, adv, train, val, cfg, catchup)
    model.eval()
    for a in cfg.evaluate.keep_ratios:
        keep = inference_masks(model, val, a, cfg.runtime)
        reading = coverage_of(keep, val, model.grid, a, len(model.scorers))
        row[f"pattern_cmap_a{a:g}"] = keep_pattern_leak(keep, val.attributes)
        row[f"coverage_a{a:g}"] = reading.coverage
        row[f"oracle_a{a:g}"] = reading.oracle
        row[f"bystander_kept_a{a:g}"] = reading.bystander_kept
    if probe:
        cfg.evaluate.seeds = 1
        for a in probe_ratios or cfg.evaluate.keep_ratios:
            published = [anonymize_clips(model, c, a, cfg.runtime) for c in (train, val)]
            r = evaluate_clips("stprivacy", a, *published, cfg, seed)
            row[f"val_action_a{a:g}"] = r.action_top1
            row[f"val_cmap_a{a:g}"] = r.worst[1].cmap
            row[f"val_ap_a{a:g}"] = {k: v.per_attribute_ap for k, v in r.attackers.items()}
            row[f"val_cmap_by_attacker_a{a:g}"] = {k: v.cmap for k, v in r.attackers.items()}
            if mask_probe:  # the same suite on the keep pattern alone
                m = evaluate_clips("mask-only", a, *(mask_only_view(c, model.grid) for c in published), cfg, seed)
                row[f"val_mask_only_cmap_a{a:g}"] = m.worst[1].cmap
                row[f"val_mask_only_ap_a{a:g}"] = {k: v.per_attribute_ap for k, v in m.attackers.items()}
    row["minutes"] = (time.time() - started) / 60
    return row


def run_baseline(cfg, name: str, seed: int, data: dict) -> dict:
    """A non-learned baseline judged on validation by the same phase-3 suite as the recipes' probe."""
    from stprivacy.models.baselines import apply_baseline

    cfg = copy.deepcopy(cfg)
    cfg.runtime.progress, cfg.evaluate.seeds = False, 1
    started = time.time()
    r = evaluate_clips(name, None, apply_baseline(name, data["train"]), apply_baseline(name, data["val"]), cfg, seed)
    return {"seed": seed, "val_action": r.action_top1, "val_cmap": r.worst[1].cmap,
            "val_ap": {k: v.per_attribute_ap for k, v in r.attackers.items()},
            "val_cmap_by_attacker": {k: v.cmap for k, v in r.attackers.items()},
            "minutes": (time.time() - started) / 60}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="synth-quick")
    ap.add_argument("--recipe", action="append", default=[], help="name=override;override;...")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--phases", default="12", choices=["1", "12"])
    ap.add_argument("--probe", action="store_true", help="the phase-3 suite on validation after training")
    ap.add_argument("--mask-probe", action="store_true",
                    help="with --probe: the same suite on the keep pattern alone (kept tubelets grey; minutes)")
    ap.add_argument("--probe-ratios", type=float, nargs="+", help="keep ratios of the probe (default: the preset's)")
    ap.add_argument("--set", action="append", default=[], help="an override for every recipe")
    ap.add_argument("--catchup", type=int, nargs="+", help="after phase 2, the privacy recognizers' validation cMAP "
                    "after this many more batches on the final output, co-trained and fresh (catch_up)")
    ap.add_argument("--baseline", action="append", default=[], help="also judge this non-learned baseline on "
                    "validation with the same phase-3 suite, one row per seed (e.g. raw, frame_difference)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    base = load_experiment(args.base, args.set)
    synth = synth_preset(base.data.synth_preset)
    torch.set_num_threads(base.runtime.threads or 2)  # studies side by side: --set runtime.threads=1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data_by_seed: dict[int, dict] = {}
    for seed in args.seeds:
        if seed not in data_by_seed:  # the same clips for every recipe of one seed
            train = render_split(synth, base.data.train_size, seed, "train", base.data.workers, progress=False)
            train, val = split_validation(base.data, seed, train, progress=False)
            data_by_seed[seed] = {"train": train, "val": val}
        for name in args.baseline:
            row = {"recipe": f"baseline:{name}", **run_baseline(base, name, seed, data_by_seed[seed])}
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(row["recipe"], "seed", seed, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)},
                  flush=True)
        for text in args.recipe:
            name, overrides = parse_recipe(text)
            row = {"recipe": name, **run_recipe(args.base, [*args.set, *overrides], seed, args.phases, args.probe,
                                                 data_by_seed[seed], args.probe_ratios, args.catchup,
                                                 args.mask_probe)}
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            last = row["epochs"][-1] if row["epochs"] else {}
            shown = {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}
            print(name, "seed", seed, shown, {k: v for k, v in last.items() if k.startswith("val_")}, flush=True)


if __name__ == "__main__":
    main()
