"""The report's aggregation over seeds and its markdown table."""

import pytest

from stprivacy.evaluation.phase3 import AttackResult, MethodResult
from stprivacy.evaluation.report import build_report, markdown_table


def _result(name, seed, action, cmaps):
    return MethodResult(name, None, seed, action,
                        {k: AttackResult(c, c / 100, [c, c]) for k, c in cmaps.items()})


def test_seeds_are_aggregated_with_their_spread_and_the_worst_attacker_is_the_headline():
    results = [_result("raw", 0, 80.0, {"vit": 70.0, "frame": 90.0}),
               _result("raw", 1, 90.0, {"vit": 95.0, "frame": 85.0})]
    report = build_report("synthetic", ["a", "b"], 50.0, results)
    (raw,) = report["methods"]
    assert raw["action_top1"] == pytest.approx(85.0) and raw["seeds"] == [0, 1]
    assert raw["privacy_cmap"] == pytest.approx(92.5)  # worst per seed: 90 (frame), then 95 (vit)
    assert raw["action_top1_std"] > 0
    table = markdown_table(report)
    assert "| raw |  | 85.00 ± " in table and "Mean ± std over seeds" in table


def test_one_seed_shows_no_spread():
    table = markdown_table(build_report("synthetic", ["a", "b"], 50.0, [_result("raw", 0, 80.0, {"vit": 70.0})]))
    assert "±" not in table.split("\n", 3)[3] and "| raw |  | 80.00 | 70.00 |" in table
    assert "One seed" in table
