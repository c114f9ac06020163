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


def test_fine_pattern_share_and_keep_pattern_leak_survive_json_and_show_in_the_table():
    from stprivacy.evaluation.report import result_from_json, result_to_json

    r = _result("stprivacy", 0, 90.0, {"frame": 66.0})
    r.fine_pattern, r.keep_pattern = 0.74, 57.25
    back = result_from_json(result_to_json(r))
    assert back.fine_pattern == pytest.approx(0.74) and back.keep_pattern == pytest.approx(57.25)
    report = build_report("synthetic", ["a", "b"], 50.0, [back, _result("raw", 0, 92.0, {"frame": 99.0})])
    by_name = {m["name"]: m for m in report["methods"]}
    assert by_name["stprivacy"]["fine_pattern"] == pytest.approx(0.74) and by_name["raw"]["fine_pattern"] is None
    assert by_name["stprivacy"]["keep_pattern"] == pytest.approx(57.25) and by_name["raw"]["keep_pattern"] is None
    table = markdown_table(report)
    assert "| 0.74 | 57.2 |" in table and "fine-pattern share | keep-pattern cMAP" in table


def test_published_fine_pattern_reads_the_first_view_of_uint8_clips():
    import torch

    from stprivacy.evaluation.leakage import published_fine_pattern

    noise = torch.randint(0, 256, (4, 2, 3, 2, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert published_fine_pattern(noise) > 0.8
    flat = torch.full((4, 2, 3, 2, 16, 16), 128, dtype=torch.uint8)
    flat[..., :8, :] = 30  # an edge on a block boundary: variation, none of it inside a block
    assert published_fine_pattern(flat) < 1e-6
    assert published_fine_pattern(noise[..., :15]) is None


def test_the_table_says_which_synthetic_targets_are_met_with_the_figure_reached():
    results = [_result("raw", 0, 92.0, {"frame": 100.0})]
    for ratio, action, cmap, coverage in ((0.7, 91.0, 63.2, 1.54), (0.4, 88.0, 59.0, 2.3), (1.0, 93.0, 64.0, 1.0)):
        r = _result("stprivacy", 0, action, {"frame": cmap})
        r.keep_ratio, r.coverage = ratio, coverage
        results.append(r)
    table = markdown_table(build_report("synthetic", ["a", "b"], 50.0, results))
    assert "action >= raw - 2 = 90.0; worst cMAP <= chance + 10 = 60.0; actor coverage >= 2" in table
    assert "* a = 0.70: action 91.0 met; cMAP 63.2 **missed**; coverage 1.54 **missed**" in table
    assert "* a = 0.40: action 88.0 **missed**; cMAP 59.0 met; coverage 2.30 met" in table
    assert "* a = 1.00: action 93.0 met; cMAP 64.0 **missed**\n" in table  # no coverage verdict when all is kept
    # real data (no coverage) or no raw row: no verdicts
    assert "targets" not in markdown_table(build_report("real", ["a", "b"], 50.0, results[:1]))
