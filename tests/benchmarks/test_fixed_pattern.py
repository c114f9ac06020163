"""The fixed-pattern measurement, on a few clips: a pattern that never changes leaks nothing, and the ranking by
the actor's mean share keeps more actor than chance."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fixed_pattern.py"


def test_fixed_patterns_keep_the_actor_and_tell_nothing():
    spec = importlib.util.spec_from_file_location("fixed_pattern", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--train", "48", "--val", "40"])
    assert {r["ranking"] for r in rows} == {"centre first", "mean actor share (actor masks)", "mean motion (no label)"}
    for r in rows:
        assert 45 <= r["pattern_cmap"] <= 55  # the same mask for every clip: the attacker has only the prior
    actor = [r for r in rows if r["ranking"].startswith("mean actor") and r["keep_ratio"] == 0.7]
    assert actor and actor[0]["coverage"] > 1.5
