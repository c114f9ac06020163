"""The GPU benchmark script, run on the CPU with the tiny preset so it cannot rot where no GPU is at hand."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_bench.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_measures_every_phase_in_both_precisions(tmp_path, gpu_bench):
    report = gpu_bench.main(["--device", "cpu", "--preset", "tiny", "--batch", "2", "--steps", "1",
                             "--out", str(tmp_path)])
    whats = {r["what"] for r in report["results"]}
    assert whats == {"phase 1 step", "phase 2 step", "phase 3 ViT recognizer step", "phase 3 frame-CNN attacker step",
                     "inference a=1.0", "inference a=0.7"}
    assert {r["precision"] for r in report["results"]} == {"fp32", "bf16"}
    for r in report["results"]:
        assert r["clips_per_s"] > 0 and r["gflop_per_clip"] > 0 and math.isfinite(r["tflop_per_s"])
        assert r["peak_fraction"] is None  # no peak known for a CPU
    # sparsification does less work: fewer FLOPs at a = 0.7 than at a = 1.0
    flops = {r["what"]: r["gflop_per_clip"] for r in report["results"] if r["precision"] == "fp32"}
    assert flops["inference a=0.7"] < flops["inference a=1.0"]
    assert flops["phase 2 step"] > flops["phase 1 step"]
    saved = json.loads(next(tmp_path.glob("gpu_bench_*.json")).read_text())
    assert saved["results"] == report["results"]


def test_peak_table_and_override(gpu_bench):
    import torch

    assert gpu_bench.peak_for(torch.device("cpu"), None) is None
    assert gpu_bench.peak_for(torch.device("cpu"), 100.0) == {"fp32": 100.0, "bf16": 100.0}
    assert gpu_bench.PEAK_TFLOPS["H100"]["bf16"] > gpu_bench.PEAK_TFLOPS["A100"]["bf16"]
