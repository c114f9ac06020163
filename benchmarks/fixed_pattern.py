"""How far a keep pattern that is the same for every clip goes on the synthetic benchmark, before any training.

    python benchmarks/fixed_pattern.py --train 1000 --val 500

Three fixed rankings of the tubelet positions of each slice: centre first; the training clips' mean actor share
(it uses the renderer's actor masks, which real data lacks); and ``selection.motion_prior``, where the training
clips change most on average (no label; what ``model.selection: prior`` uses). For each, at every keep ratio:
actor coverage (1 = random), the bystander's share of the kept tubelets, and the keep pattern's linear leak
(chance about 50; a pattern that never changes tells nothing, so it sits at the prior). Figures are printed and
returned (docs/results/recipe_study.md, ninth session).
"""

from __future__ import annotations

import argparse

import torch

from stprivacy.config import load_experiment
from stprivacy.data.synthetic.config import synth_preset
from stprivacy.data.synthetic.dataset import render_split
from stprivacy.evaluation.instruments import coverage_of, keep_pattern_leak, tubelet_share
from stprivacy.models import STPrivacy
from stprivacy.models.selection import hard_topk, motion_prior, tokens_to_keep


def rankings(train, grid) -> dict[str, torch.Tensor]:
    """Each fixed ranking as an L x N score (higher = kept first)."""
    h, w = grid.grid_hw
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5 - h / 2, torch.arange(w) + 0.5 - w / 2, indexing="ij")
    centre = -(yy**2 + xx**2).flatten() + 1e-3 * torch.rand(h * w, generator=torch.Generator().manual_seed(0))
    return {
        "centre first": centre.expand(grid.slices, -1),
        "mean actor share (actor masks)": tubelet_share(train.actor_masks[:, 0], grid).mean(0),
        "mean motion (no label)": motion_prior(train.videos[:, 0], grid.tubelet),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="synth-quick")
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    cfg = load_experiment(args.preset, [])
    model = STPrivacy(cfg.model)
    grid, stages = model.grid, len(model.scorers)
    synth = synth_preset(cfg.data.synth_preset)
    train = render_split(synth, args.train, args.seed, "train", 1, progress=False)
    val = render_split(synth, args.val, args.seed, "val", 1, progress=False)
    rows = []
    for name, score in rankings(train, grid).items():
        for a in sorted({cfg.model.keep_ratio, *cfg.evaluate.keep_ratios}, reverse=True):
            k = tokens_to_keep(grid.tokens_per_slice, a, stages)
            keep = hard_topk(score.reshape(1, -1), torch.ones(1, score.numel()), grid.slices, k)
            keep = keep.reshape(1, grid.slices, -1).expand(len(val), -1, -1).clone()
            r = coverage_of(keep, val, grid, a, stages)
            rows.append({"ranking": name, "keep_ratio": a, "coverage": r.coverage, "oracle": r.oracle,
                         "bystander_kept": r.bystander_kept, "pattern_cmap": keep_pattern_leak(keep, val.attributes)})
            print(f"{name:32s} a={a:g}: coverage {r.coverage:.2f} (oracle {r.oracle:.2f}), bystander share of the "
                  f"kept {r.bystander_kept:.3f}, keep-pattern leak {rows[-1]['pattern_cmap']:.1f}")
    return rows


if __name__ == "__main__":
    main()
