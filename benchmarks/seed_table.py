"""Mean and spread over whole-run seeds: one table from the ``report.json`` of several run folders.

    python benchmarks/seed_table.py runs/seed0 runs/seed1 runs/seed2 --out docs/results/seeds_quick

Each run folder is one whole run (data draw, phases 1-2, phase 3) of the same preset with another ``seed``; the
table gives, per method and keep ratio, the mean and sample standard deviation over runs of action top-1, worst-case
privacy cMAP, actor coverage, fine-pattern share and keep-pattern cMAP (reports of schema 5 on), and the per-run
figures beside them; a second table gives each attacker family's cMAP (``--out`` writes ``.md`` and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def _stat(values: list[float | None]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def seed_table(runs: list[Path]) -> dict:
    reports = [json.loads((r / "report.json").read_text()) for r in runs]
    rows: dict[tuple, list[dict]] = {}
    for report in reports:
        for m in report["methods"]:
            rows.setdefault((m["name"], m["keep_ratio"]), []).append(m)
    methods = []
    for (name, ratio), ms in rows.items():
        row = {"name": name, "keep_ratio": ratio, "runs": len(ms)}
        for key in ("action_top1", "privacy_cmap", "coverage", "fine_pattern", "keep_pattern"):
            values = [m.get(key) for m in ms]
            row[key], row[key + "_std"] = _stat(values)
            row[key + "_runs"] = values
        kinds = list(dict.fromkeys(k for m in ms for k in m.get("attackers", {})))
        for kind in kinds:  # each attacker family's own reading, beside the worst case
            values = [m["attackers"][kind]["cmap"] if kind in m.get("attackers", {}) else None for m in ms]
            row[f"cmap_{kind}"], row[f"cmap_{kind}_std"] = _stat(values)
            row[f"cmap_{kind}_runs"] = values
        row["attacker_kinds"] = kinds
        methods.append(row)
    chance = statistics.fmean(r["chance_cmap"] for r in reports)
    return {"runs": [str(r) for r in runs], "dataset": reports[0]["dataset"], "split": reports[0].get("split"),
            "chance_cmap": chance, "methods": methods}


def _fmt(row: dict, key: str, digits: int = 1) -> str:
    if row[key] is None:
        return ""
    runs = ", ".join(f"{v:.{digits}f}" for v in row[key + "_runs"] if v is not None)
    return f"{row[key]:.2f} ± {row[key + '_std']:.2f} ({runs})"


def markdown(table: dict) -> str:
    lines = [f"Whole-run seeds: {len(table['runs'])} ({', '.join(table['runs'])}); {table['dataset']}, "
             f"{table['split']} split; chance cMAP {table['chance_cmap']:.2f}. Mean ± sample std (per run).", "",
             "| method | keep ratio | action top-1 (%) | worst-case privacy cMAP (%) | actor coverage | "
             "fine-pattern share | keep-pattern cMAP (linear) |",
             "|---|---|---|---|---|---|---|"]
    for row in table["methods"]:
        ratio = "" if row["keep_ratio"] is None else f"{row['keep_ratio']:.2f}"
        lines.append(f"| {row['name']} | {ratio} | {_fmt(row, 'action_top1')} | {_fmt(row, 'privacy_cmap')} | "
                     f"{_fmt(row, 'coverage')} | {_fmt(row, 'fine_pattern', 2)} | {_fmt(row, 'keep_pattern')} |")
    kinds = list(dict.fromkeys(k for row in table["methods"] for k in row.get("attacker_kinds", [])))
    if kinds:
        lines += ["", "Privacy cMAP (%) by attacker family:", "",
                  "| method | keep ratio | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
        for row in table["methods"]:
            ratio = "" if row["keep_ratio"] is None else f"{row['keep_ratio']:.2f}"
            cells = [_fmt(row, f"cmap_{k}") if f"cmap_{k}" in row else "" for k in kinds]
            lines.append(f"| {row['name']} | {ratio} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = seed_table(args.runs)
    print(markdown(table))
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(table, indent=1))
        args.out.with_suffix(".md").write_text(markdown(table))


if __name__ == "__main__":
    main()
