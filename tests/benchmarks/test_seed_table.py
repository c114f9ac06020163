"""The multi-seed table: mean, sample spread and per-run figures of every method and keep ratio."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "seed_table.py"


def _load():
    spec = importlib.util.spec_from_file_location("seed_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(path: Path, action: float, cmap: float, keep_pattern: float | None) -> Path:
    path.mkdir()
    method = {"name": "stprivacy", "keep_ratio": 0.7, "action_top1": action, "privacy_cmap": cmap,
              "coverage": 1.5, "fine_pattern": 0.2,
              "attackers": {"vit": {"cmap": cmap - 2}, **({"ridge": {"cmap": cmap}} if keep_pattern else {})}}
    if keep_pattern is not None:  # reports before schema 5 have no keep-pattern reading
        method["keep_pattern"] = keep_pattern
    (path / "report.json").write_text(json.dumps({"dataset": "synthetic:quick", "split": "test", "chance_cmap": 50.0,
                                                 "methods": [method]}))
    return path


def test_the_table_gives_mean_spread_and_runs_and_skips_readings_a_report_lacks(tmp_path):
    table_mod = _load()
    runs = [_report(tmp_path / "s0", 90.0, 58.0, 56.0), _report(tmp_path / "s1", 94.0, 62.0, 58.0),
            _report(tmp_path / "s2", 92.0, 60.0, None)]
    table = table_mod.seed_table(runs)
    row = table["methods"][0]
    assert row["runs"] == 3 and row["action_top1"] == pytest.approx(92.0) and row["action_top1_std"] == 2.0
    assert row["privacy_cmap"] == pytest.approx(60.0)
    assert row["keep_pattern"] == pytest.approx(57.0) and row["keep_pattern_runs"] == [56.0, 58.0, None]
    text = table_mod.markdown(table)
    assert "92.00 ± 2.00 (90.0, 94.0, 92.0)" in text and "57.00 ± 1.41 (56.0, 58.0)" in text
    # each attacker family's own reading, over the runs that had it
    assert row["cmap_vit"] == pytest.approx(58.0) and row["cmap_ridge_runs"] == [58.0, 62.0, None]
    assert "| stprivacy | 0.70 | 58.00 ± 2.00 (56.0, 60.0, 58.0) | 60.00 ± 2.83 (58.0, 62.0) |" in text
