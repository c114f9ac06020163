"""SIGKILL a real training process at random moments, resume it each time, and compare with an uninterrupted run."""

import os
import random
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from stprivacy.training.run_dir import RunDir

ARGS = ["--preset", "tiny", "--set", "train.phase1_epochs=3", "--set", "train.phase2_epochs=3"]


def _train(out, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-m", "stprivacy.cli", "train", "--out", str(out), *ARGS], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_run(run, proc) -> None:
    """Until the run folder's log exists: on a loaded machine start-up alone (imports) can outlast a fixed delay,
    and a process killed before creating its run leaves nothing to resume."""
    deadline = time.time() + 120
    while not (run / "log.jsonl").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)


def test_sigkill_at_random_points_then_resume_matches_uninterrupted(tmp_path):
    ref = _train(tmp_path / "ref")
    _wait_for_run(tmp_path / "ref", ref)
    started = time.time()
    assert ref.wait(timeout=180) == 0
    # kill moments are fractions of the reference run's own training time, so that they fall inside a run on a
    # fast idle machine (a few seconds) as on a loaded one
    duration = time.time() - started
    rng = random.Random(1234)
    killed_run = tmp_path / "killed"
    kills = 0
    for _ in range(4):
        proc = _train(killed_run)
        _wait_for_run(killed_run, proc)
        time.sleep(rng.uniform(0.1, 0.7) * duration)
        if proc.poll() is not None:
            break  # it finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    final = _train(killed_run)
    assert final.wait(timeout=180) == 0
    assert kills >= 1
    ref_w = load_file(str(tmp_path / "ref" / "checkpoints" / "anonymizer.safetensors"))
    got_w = load_file(str(killed_run / "checkpoints" / "anonymizer.safetensors"))
    assert ref_w.keys() == got_w.keys()
    for k in ref_w:
        assert torch.equal(ref_w[k], got_w[k]), k

    def last_epochs(run):
        records = [r for r in RunDir(run).read_log() if r["event"] == "epoch"]
        return {(r["phase"], r["epoch"]): {k: v for k, v in r.items() if k != "time"} for r in records}

    assert last_epochs(killed_run) == last_epochs(tmp_path / "ref")
    assert sum(r["event"] == "resume" for r in RunDir(killed_run).read_log()) >= 1
