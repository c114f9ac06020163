"""benchmarks/erasure_holdout.py: a run's eraser judged by attackers trained on clips it was not fitted on."""

import importlib.util
from pathlib import Path

from stprivacy import pipeline
from stprivacy.config import load_experiment

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_three_publications_judged_on_the_held_out_half(tmp_path):
    spec = importlib.util.spec_from_file_location("erasure_holdout", BENCHMARKS / "erasure_holdout.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    cfg = load_experiment("tiny", ["train.phase2_output_rank=2", "train.linear_erasure=true"])
    run = pipeline.prepare_run(cfg, tmp_path / "run")
    pipeline.train(run)
    out = tmp_path / "rows.jsonl"
    rows = script.main([str(run.path), "--keep-ratio", "0.7", "--attackers", "ridge", "--out", str(out)])
    assert [r["publication"] for r in rows] == ["eraser fitted on half A", "the run's eraser (both halves)",
                                                "no eraser"]
    assert len(out.read_text().splitlines()) == 3
    assert all(set(r["cmap_by_attacker"]) == {"ridge"} and 0 <= r["worst_cmap"] <= 100 for r in rows)
    # three different publications of the same clips: the readings are not copies of one another
    assert len({round(r["worst_cmap"], 6) for r in rows}) > 1
    # one publication alone, with a guarded eraser refit on half A as the run's config says
    guarded = pipeline.prepare_run(load_experiment("tiny", ["train.phase2_output_rank=2", "train.linear_erasure=true",
                                                            "train.erasure_second_order=true"]), tmp_path / "g")
    pipeline.train(guarded)
    only = script.main([str(guarded.path), "--attackers", "ridge", "--publications", "half-a"])
    assert [r["publication"] for r in only] == ["eraser fitted on half A"]
