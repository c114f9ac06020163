"""benchmarks/inference_profile.py: a CPU smoke run of the op-level profile of sparsified inference."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def profile_script():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports gpu_bench from its own folder
    try:
        spec = importlib.util.spec_from_file_location("inference_profile", BENCHMARKS / "inference_profile.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("precision", ["fp32", "bf16-weights"])
def test_smoke_run_profiles_both_keep_ratios(tmp_path, profile_script, precision):
    out = tmp_path / "profile.json"
    report = profile_script.main(["--device", "cpu", "--preset", "tiny", "--batch", "2", "--precision", precision,
                                  "--rows", "40", "--out", str(out)])
    assert set(report["ratios"]) == {"1.0", "0.7"}
    for entry in report["ratios"].values():
        assert entry["clips_per_s"] > 0 and entry["device_busy_ms"] is None  # no GPU: no device time
        names = {op["op"] for op in entry["host_ops"]}
        assert "aten::addmm" in names  # the profiler saw the model's linear layers
        assert all(op["self_us"] >= 0 and op["calls"] >= 1 for op in entry["host_ops"])
    # the sparsified call selects: top-k and the gathers of the kept tokens are among its operators
    assert {"aten::topk", "aten::gather"} <= {op["op"] for op in report["ratios"]["0.7"]["host_ops"]}
    assert json.loads(out.read_text()) == report
