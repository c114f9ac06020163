"""Data parallelism: the split of a global batch, and 2 gloo processes under torchrun against 1 process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stprivacy.training.distributed import Dist, micro_batches

HERE = Path(__file__).parent
#: Two processes sum the same per-sample gradients in another order than one: float32 rounding only.
TOLERANCE = 1e-5


def test_micro_batches_cover_the_global_batch_once_with_weights_summing_to_one():
    batch = {"video": torch.arange(11.0), "action": torch.arange(11)}
    seen, total = [], 0.0
    for rank in range(3):
        for part, weight in micro_batches(batch, Dist(rank, 3), accumulate=2):
            assert weight == pytest.approx(len(part["video"]) / 11)
            assert torch.equal(part["video"].long(), part["action"])
            seen += part["action"].tolist()
            total += weight
    assert seen == list(range(11)) and total == pytest.approx(1.0)


def test_gradient_accumulation_gives_the_same_training_as_whole_batches():
    sys.path.insert(0, str(HERE))
    try:
        from ddp_worker import train_and_predict
    finally:
        sys.path.remove(str(HERE))
    whole, scores = train_and_predict(accumulate=1)
    micro, micro_scores = train_and_predict(accumulate=3)
    for k, v in whole.items():
        torch.testing.assert_close(micro[k], v, atol=TOLERANCE, rtol=0, msg=k)
    torch.testing.assert_close(micro_scores, scores, atol=TOLERANCE, rtol=0)


def _torchrun(args: list[str], tmp_path: Path, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun not found beside the interpreter"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    cmd = [torchrun, "--standalone", f"--nproc_per_node={nproc}", *args]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_gloo_processes_train_like_one_process_on_the_same_global_batch(tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        from ddp_worker import train_and_predict
    finally:
        sys.path.remove(str(HERE))
    single, single_scores = train_and_predict()
    _torchrun([str(HERE / "ddp_worker.py"), str(tmp_path / "ddp.safetensors")], tmp_path)
    ddp = load_file(str(tmp_path / "ddp.safetensors"))
    scores = ddp.pop("__scores__")
    assert set(ddp) == set(single)
    worst = max((ddp[k] - v).abs().max().item() for k, v in single.items())
    assert worst < TOLERANCE, f"largest weight difference {worst:.2e}"
    # both runs really trained: a test of two untrained copies would pass the comparison above trivially
    for weights in (single, ddp):
        names = [k for k in weights if not k.startswith("__")]
        moved = [k for k in names if not torch.equal(weights[k], weights[f"__init__.{k}"])]
        assert len(moved) > len(names) // 2, "training changed too little"
    # the test predictions were sharded over the two ranks and gathered back in order
    torch.testing.assert_close(scores, single_scores, atol=TOLERANCE, rtol=0)


def test_torchrun_benchmark_logs_and_writes_once_from_rank_0(tmp_path):
    out = tmp_path / "run"
    _torchrun(["-m", "stprivacy.cli", "benchmark", "--preset", "tiny", "--out", str(out), "--set",
               "evaluate.seeds=1", "--set", "evaluate.keep_ratios=[0.7]"], tmp_path)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    epochs = [(r["phase"], r["epoch"]) for r in records if r["event"] == "epoch"]
    assert epochs == [(1, 1), (2, 1)], epochs  # one line per epoch, not one per rank
    assert sum(r["event"] == "start" for r in records) == 1
    report = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in report["methods"]] == ["raw", "stprivacy"]
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["raw_seed0.json", "stprivacy_a0.7_seed0.json"]
