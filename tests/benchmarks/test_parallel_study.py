"""The parallel study driver: seed-major queue, one row per finished job, failures reported with their log."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "parallel_study.py"
_spec = importlib.util.spec_from_file_location("parallel_study", SCRIPT)
parallel_study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parallel_study)


def test_jobs_are_queued_seed_major():
    assert parallel_study.jobs_of(["a=", "b=x=1"], [0, 1]) == [("a=", 0), ("b=x=1", 0), ("a=", 1), ("b=x=1", 1)]


def test_a_finished_job_gives_its_row_and_a_failed_one_its_log(tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    with pytest.raises(SystemExit):  # one job fails: the driver exits non-zero after the others finished
        parallel_study.main(["--out", str(out), "--parallel", "2", "--recipe", "base=", "--recipe",
                             "bad=train.no_such_option=1", "--", "--base", "tiny", "--phases", "1",
                             "--set", "runtime.threads=1"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["recipe"], r["seed"]) for r in rows] == [("base", 0)]
    assert rows[0]["job_minutes"] > 0 and "coverage_a0.7" in rows[0]
    failed = out.with_suffix(".failed").read_text()
    assert "bad=train.no_such_option=1 seed 0" in failed and "no_such_option" in failed.split("\n", 1)[1]
    assert "1 rows" in capsys.readouterr().out
