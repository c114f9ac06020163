"""``report.json`` (stable schema, see the README), ``report.md`` and ``tradeoff.png`` from phase-3 results.

Per seed the headline privacy number is the worst case over attackers (highest cMAP); the report gives the mean and
the standard deviation of that over seeds, and every attacker's own numbers beside it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from stprivacy.evaluation.phase3 import AttackResult, MethodResult

#: 2: every method has ``coverage`` / ``coverage_std`` (None where not measured) and the report says which split
#: its numbers come from (``split``). 4: every method has ``fine_pattern`` (None where not measured). 5: and
#: ``keep_pattern`` (None where not measured).
SCHEMA_VERSION = 5


def result_to_json(r: MethodResult) -> dict:
    return {"name": r.name, "keep_ratio": r.keep_ratio, "seed": r.seed, "action_top1": r.action_top1,
            "attackers": {k: asdict(v) for k, v in r.attackers.items()}, "coverage": r.coverage,
            "fine_pattern": r.fine_pattern, "keep_pattern": r.keep_pattern}


def result_from_json(d: dict) -> MethodResult:
    return MethodResult(d["name"], d["keep_ratio"], d["seed"], d["action_top1"],
                        {k: AttackResult(**v) for k, v in d["attackers"].items()}, d.get("coverage"),
                        d.get("fine_pattern"), d.get("keep_pattern"))


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def aggregate(results: list[MethodResult], attribute_names) -> list[dict]:
    groups: dict[tuple, list[MethodResult]] = defaultdict(list)
    for r in results:
        groups[(r.name, r.keep_ratio)].append(r)
    methods = []
    for (name, ratio), rs in groups.items():
        rs.sort(key=lambda r: r.seed)
        top1, top1_sd = _mean_std([r.action_top1 for r in rs])
        worst = [r.worst[1] for r in rs]
        cm, cm_sd = _mean_std([w.cmap for w in worst])
        f1, f1_sd = _mean_std([w.f1 for w in worst])
        attackers = {}
        for kind in rs[0].attackers:
            per = [r.attackers[kind] for r in rs]
            aps = np.array([[np.nan if a is None else a for a in p.per_attribute_ap] for p in per], dtype=float)
            kind_cmap, kind_cmap_std = _mean_std([p.cmap for p in per])
            attackers[kind] = {
                "cmap": kind_cmap, "cmap_std": kind_cmap_std,
                "f1": _mean_std([p.f1 for p in per])[0],
                "per_attribute_ap": dict(zip(attribute_names, np.nanmean(aps, 0).round(3).tolist(), strict=True)),
            }
        covered = [r.coverage for r in rs if r.coverage is not None]
        cov, cov_sd = _mean_std(covered) if covered else (None, None)
        patterned = [r.fine_pattern for r in rs if r.fine_pattern is not None]
        keep_read = [r.keep_pattern for r in rs if r.keep_pattern is not None]
        methods.append({
            "name": name, "keep_ratio": ratio, "coverage": cov, "coverage_std": cov_sd,
            "fine_pattern": _mean_std(patterned)[0] if patterned else None,
            "keep_pattern": _mean_std(keep_read)[0] if keep_read else None,
            "action_top1": top1, "action_top1_std": top1_sd,
            "privacy_cmap": cm, "privacy_cmap_std": cm_sd,
            "privacy_f1": f1, "privacy_f1_std": f1_sd,
            "worst_attacker": [r.worst[0] for r in rs],
            "attackers": attackers,
            "seeds": [r.seed for r in rs],
        })
    order = {"raw": 0, "stprivacy": 2, "sparsify-only": 3}
    methods.sort(key=lambda m: (order.get(m["name"], 1), m["name"], -(m["keep_ratio"] or 0)))
    return methods


def build_report(dataset: str, attribute_names, chance: float, results: list[MethodResult],
                 split: str = "test", initialisation: dict | None = None) -> dict:
    """``initialisation``: where the trained networks started ({"start": {...}, "warnings": [...]})."""
    init = initialisation or {"start": {}, "warnings": []}
    return {"schema_version": SCHEMA_VERSION, "dataset": dataset, "split": split, "attributes": list(attribute_names),
            "chance_cmap": chance, "initialisation": init["start"], "warnings": init["warnings"],
            "methods": aggregate(results, attribute_names)}


def _max_seeds(report: dict) -> int:
    return max((len(m["seeds"]) for m in report["methods"]), default=0)


def _cell(method: dict, key: str) -> str:
    """``mean ± std`` over seeds; the mean alone for one seed (a std of one value says nothing)."""
    if len(method["seeds"]) < 2:
        return f"{method[key]:.2f}"
    return f"{method[key]:.2f} ± {method[key + '_std']:.2f}"


def markdown_table(report: dict) -> str:
    split = report.get("split", "test")
    lines = [f"# Results on {report['dataset']} ({split} split)", "",
             f"Every number below is measured on the {split} split, by recognizers and attackers trained on the "
             "transformed training split. "
             f"Chance cMAP (label prior of the {split} split): {report['chance_cmap']:.2f}. "
             "Privacy numbers are the worst case over attackers; lower is better."
             + (" Mean ± std over seeds." if _max_seeds(report) > 1 else " One seed: no spread is measured."), "",
             "Actor coverage: the actor's share of the kept tubelets over its share of all tubelets (1 = a random "
             "choice; synthetic data only). Fine-pattern share: the published test clips' variation inside 4 x 4 "
             "blocks over their whole variation (raw synthetic clips: about 0.2; near 1 = the output is a "
             "pixel-level code, which fresh attackers can learn to read). Keep-pattern cMAP: a fresh linear "
             "attacker's cMAP on the published keep masks alone (out of fold; chance about 50): what *which* "
             "tubelets are shown tells.", "",
             *([f"Started from: {', '.join(f'{k} {v}' for k, v in report['initialisation'].items())}.", ""]
               if report.get("initialisation") else []),
             *(f"**Warning:** {w}." for w in report.get("warnings", [])),
             *([""] if report.get("warnings") else []),
             "| method | keep ratio | action top-1 (%) ↑ | privacy cMAP (%) ↓ | privacy F1 ↓ | actor coverage | "
             "fine-pattern share | keep-pattern cMAP | worst attacker | "
             + " | ".join(f"cMAP {k}" for k in _attacker_names(report)) + " |",
             "|---|---|---|---|---|---|---|---|---|" + "---|" * len(_attacker_names(report))]
    for m in report["methods"]:
        ratio = "" if m["keep_ratio"] is None else f"{m['keep_ratio']:.2f}"
        per = " | ".join(f"{m['attackers'][k]['cmap']:.2f}" if k in m["attackers"] else ""
                         for k in _attacker_names(report))
        lines.append(f"| {m['name']} | {ratio} | {_cell(m, 'action_top1')} | "
                     f"{_cell(m, 'privacy_cmap')} | {m['privacy_f1']:.3f} | {_coverage_cell(m)} | "
                     f"{'' if m.get('fine_pattern') is None else format(m['fine_pattern'], '.2f')} | "
                     f"{'' if m.get('keep_pattern') is None else format(m['keep_pattern'], '.1f')} | "
                     f"{'/'.join(sorted(set(m['worst_attacker'])))} | {per} |")
    lines += ["", "Per-attribute AP (%) of the worst attacker family:", "",
              "| method | keep ratio | " + " | ".join(report["attributes"]) + " |",
              "|---|---|" + "---|" * len(report["attributes"])]
    for m in report["methods"]:
        kind = max(m["attackers"], key=lambda k: m["attackers"][k]["cmap"])
        aps = m["attackers"][kind]["per_attribute_ap"]
        ratio = "" if m["keep_ratio"] is None else f"{m['keep_ratio']:.2f}"
        lines.append(f"| {m['name']} ({kind}) | {ratio} | " + " | ".join(
            "n/a" if aps[a] is None or np.isnan(aps[a]) else f"{aps[a]:.1f}" for a in report["attributes"]) + " |")
    lines += target_lines(report)
    return "\n".join(lines) + "\n"


#: The synthetic benchmark's targets for STPrivacy (issue 13): action within this many points of raw, worst cMAP
#: within this many points of chance, actor coverage at least this.
ACTION_MARGIN, PRIVACY_MARGIN, COVERAGE_TARGET = 2.0, 10.0, 2.0


def target_lines(report: dict) -> list[str]:
    """Met / missed, with the figure reached, for every STPrivacy keep ratio of a report that has a ``raw`` row
    and actor coverage (the synthetic benchmark); nothing otherwise."""
    raw = next((m for m in report["methods"] if m["name"] == "raw"), None)
    rows = [m for m in report["methods"] if m["name"] == "stprivacy" and m.get("coverage") is not None]
    if raw is None or not rows:
        return []

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    action_floor = raw["action_top1"] - ACTION_MARGIN
    cmap_ceiling = report["chance_cmap"] + PRIVACY_MARGIN
    lines = ["", f"Against the synthetic benchmark's targets (action >= raw - {ACTION_MARGIN:g} = {action_floor:.1f}; "
                 f"worst cMAP <= chance + {PRIVACY_MARGIN:g} = {cmap_ceiling:.1f}; actor coverage >= "
                 f"{COVERAGE_TARGET:g}):", ""]
    for m in rows:
        line = (f"* a = {m['keep_ratio']:.2f}: action {m['action_top1']:.1f} "
                f"{verdict(m['action_top1'] >= action_floor)}; cMAP {m['privacy_cmap']:.1f} "
                f"{verdict(m['privacy_cmap'] <= cmap_ceiling)}")
        if m["keep_ratio"] < 1:  # at a = 1 every tubelet is kept: coverage is 1 by definition
            line += f"; coverage {m['coverage']:.2f} {verdict(m['coverage'] >= COVERAGE_TARGET)}"
        lines.append(line)
    return lines


def _coverage_cell(method: dict) -> str:
    if method.get("coverage") is None:
        return ""
    if len(method["seeds"]) < 2:
        return f"{method['coverage']:.2f}"
    return f"{method['coverage']:.2f} ± {method['coverage_std']:.2f}"


def _attacker_names(report: dict) -> list[str]:
    names: list[str] = []
    for m in report["methods"]:
        for k in m["attackers"]:
            if k not in names:
                names.append(k)
    return names


def plot_tradeoff(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.2, 4.8))
    curve = sorted((m for m in report["methods"] if m["name"] == "stprivacy"), key=lambda m: m["keep_ratio"])
    if curve:
        ax.errorbar([m["privacy_cmap"] for m in curve], [m["action_top1"] for m in curve],
                    xerr=[m["privacy_cmap_std"] for m in curve], yerr=[m["action_top1_std"] for m in curve],
                    marker="o", color="tab:red", label="STPrivacy (keep ratio a)", capsize=3)
        for m in curve:
            ax.annotate(f"a={m['keep_ratio']:g}", (m["privacy_cmap"], m["action_top1"]), textcoords="offset points",
                        xytext=(5, -10), fontsize=8)
    others = [m for m in report["methods"] if m["name"] != "stprivacy"]
    markers = "s^vD<>phX*P"
    # every colour but STPrivacy's red, so that no baseline can be mistaken for it
    colours = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (6, 7)]
    for i, m in enumerate(others):
        ax.errorbar(m["privacy_cmap"], m["action_top1"], xerr=m["privacy_cmap_std"], yerr=m["action_top1_std"],
                    marker=markers[i % len(markers)], color=colours[(2 * i) % len(colours)], linestyle="none",
                    capsize=3, label=m["name"])
    ax.axvline(report["chance_cmap"], color="grey", linestyle="--", label="chance cMAP")
    ax.set_xlabel("privacy cMAP, worst attacker (%)  ← better")
    ax.set_ylabel("action top-1 (%)  better →")
    ax.set_title(f"Action-privacy trade-off: {report['dataset']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out_dir / "report.md").write_text(markdown_table(report), encoding="utf-8")
    plot_tradeoff(report, out_dir / "tradeoff.png")
