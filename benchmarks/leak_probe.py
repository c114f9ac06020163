"""Where a trained anonymizer's output leaks, on validation clips of the synthetic benchmark.

    python benchmarks/leak_probe.py runs/demo --keep-ratio 0.7 --grid docs/results/leak_demo.png

For each run folder: render the ``val`` stream of the run's seed (never the test split), anonymize it at the keep
ratio, and print, for the raw clips and the output, the colour-histogram linear probe's APs, the fine-pattern share
and the motion-energy linear probe (``stprivacy.evaluation.leakage``), the last also on the raw pixels of the kept
tubelets (what the selection leaves to a faithful painter); for the output also the actor's mean colour by
skin-colour class. With ``--grid``, a picture of raw and anonymized frames of both skin-colour classes; with
``--difference-maps``, per attribute, the mean frame of the clips with it minus those without, raw and anonymized
(``evaluation.leakage.attribute_difference_maps``: where a linear reader finds its first-order signal). With
``--mask-only``, a fresh phase-3 suite (the run's own ``evaluate`` settings) trained on the run's training split
and tested on the validation clips, both showing only the keep mask (kept tubelets grey): what *which* tubelets are
kept tells by itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from stprivacy.data.synthetic import synth_preset
from stprivacy.data.synthetic.dataset import render_split
from stprivacy.evaluation.leakage import (
    attribute_difference_maps,
    colour_probe,
    fine_pattern_share,
    mask_only_view,
    motion_probe,
)
from stprivacy.evaluation.phase3 import anonymize_clips, evaluate_clips
from stprivacy.layers.tubelets import keep_mask_pixels
from stprivacy.pipeline import load_anonymizer
from stprivacy.runtime import RuntimeConfig
from stprivacy.training.run_dir import RunDir


def actor_colour(videos: torch.Tensor, actor: torch.Tensor, group: torch.Tensor) -> list[list[float]]:
    """Mean colour of the actor's pixels, per value of ``group`` (0, 1)."""
    out = []
    for g in (0, 1):
        sel = group == g
        mask = actor[sel].unsqueeze(1).float()
        out.append(((videos[sel] * mask).sum((0, 2, 3, 4)) / mask.sum().clamp_min(1)).tolist())
    return out


def mask_only_attack(cfg, model, val, keep_ratio: float) -> dict:
    cfg.runtime.progress, cfg.evaluate.seeds = False, 1
    train = render_split(synth_preset(cfg.data.synth_preset), cfg.data.train_size, cfg.seed, "train", 1,
                         progress=False)
    published = [anonymize_clips(model, c, keep_ratio, cfg.runtime) for c in (train, val)]
    r = evaluate_clips("mask-only", keep_ratio, *(mask_only_view(c, model.grid) for c in published), cfg, cfg.seed)
    return {"action_top1": r.action_top1, "worst_cmap": r.worst[1].cmap,
            "per_attribute_ap": {k: v.per_attribute_ap for k, v in r.attackers.items()}}


def probe_run(run_dir: Path, clips: int, keep_ratio: float, masks: bool = False
              ) -> tuple[dict, torch.Tensor, torch.Tensor, np.ndarray]:
    cfg = RunDir(run_dir).config()
    model = load_anonymizer(run_dir)
    val = render_split(synth_preset(cfg.data.synth_preset), clips, cfg.seed, "val", 1, progress=False)
    out = anonymize_clips(model, val, keep_ratio, RuntimeConfig(progress=False))
    raw, anon = val.videos[:, 0].float() / 255, out.videos[:, 0].float() / 255
    skin = val.attributes[:, 0]
    n = len(val)
    kept = keep_mask_pixels(out.keep_masks[:, 0].reshape(n, *out.keep_masks.shape[2:]), model.grid)
    row = {"run": str(run_dir), "keep_ratio": keep_ratio, "clips": clips, "attributes": list(val.attribute_names),
           "colour_probe_raw": colour_probe(raw, val.attributes).round(1).tolist(),
           "colour_probe_output": colour_probe(anon, val.attributes).round(1).tolist(),
           "fine_pattern_share_raw": round(fine_pattern_share(raw), 3),
           "fine_pattern_share_output": round(fine_pattern_share(anon), 3),
           "motion_probe_raw": motion_probe(raw, val.attributes).round(1).tolist(),
           "motion_probe_raw_kept": motion_probe(raw * kept, val.attributes).round(1).tolist(),
           "motion_probe_output": motion_probe(anon, val.attributes).round(1).tolist(),
           "actor_colour_raw_by_skin": actor_colour(raw, val.actor_masks[:, 0], skin),
           "actor_colour_output_by_skin": actor_colour(anon, val.actor_masks[:, 0], skin)}
    if masks:
        row["mask_only"] = mask_only_attack(cfg, model, val, keep_ratio)
    return row, raw, anon, val.attributes


def save_grid(path: Path, raw: torch.Tensor, anon: torch.Tensor, skin: np.ndarray, per_class: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = [*np.where(skin == 0)[0][:per_class], *np.where(skin == 1)[0][:per_class]]
    fig, axes = plt.subplots(2, len(picks), figsize=(2 * len(picks), 4.2))
    for j, i in enumerate(picks):
        axes[0, j].imshow(raw[i, :, 0].permute(1, 2, 0).numpy())
        axes[0, j].set_title(f"raw, skin={skin[i]}", fontsize=8)
        axes[1, j].imshow(anon[i, :, 0].permute(1, 2, 0).numpy())
        axes[1, j].set_title("anonymized", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def save_difference_maps(path: Path, raw: torch.Tensor, anon: torch.Tensor, attributes: torch.Tensor,
                         names: list[str]) -> None:
    """One column per attribute: the raw and the anonymized difference maps (grey level, channel mean), each row on
    its own symmetric colour scale, red where clips with the attribute are brighter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(names), figsize=(2.2 * len(names), 4.6))
    for row, (label, videos) in enumerate((("raw", raw), ("anonymized", anon))):
        maps = attribute_difference_maps(videos, attributes).mean(dim=1)
        scale = float(maps.abs().max()) or 1.0
        for k, name in enumerate(names):
            axes[row, k].imshow(maps[k].numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale)
            axes[row, k].set_title(f"{label}: {name}\n(max |diff| {float(maps[k].abs().max()):.3f})", fontsize=7)
            axes[row, k].axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--keep-ratio", type=float, default=0.7)
    ap.add_argument("--grid", type=Path, help="a PNG of raw and anonymized frames (of the first run)")
    ap.add_argument("--difference-maps", type=Path, help="a PNG of each attribute's mean-frame difference, raw and "
                    "anonymized (of the first run)")
    ap.add_argument("--out", type=Path, help="append one JSON line per run")
    ap.add_argument("--mask-only", action="store_true", help="a fresh phase-3 suite on the keep mask alone (minutes)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    for k, run_dir in enumerate(args.runs):
        row, raw, anon, attributes = probe_run(run_dir, args.clips, args.keep_ratio, args.mask_only)
        print(json.dumps(row))
        if args.out:
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        if args.grid and k == 0:
            save_grid(args.grid, raw, anon, attributes[:, 0].numpy())
        if args.difference_maps and k == 0:
            save_difference_maps(args.difference_maps, raw, anon, attributes, row["attributes"])


if __name__ == "__main__":
    main()
