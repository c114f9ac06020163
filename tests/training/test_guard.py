"""The instability guard: an injected NaN rolls back with a lower learning rate; persistent divergence stops."""

import pytest
import torch

from stprivacy import pipeline
from stprivacy.config import load_experiment, peak_lr
from stprivacy.data.build import build_datasets
from stprivacy.training import phase1, phase2
from stprivacy.training.guard import TrainingDivergedError


@pytest.fixture(scope="module")
def tiny_data():
    cfg = load_experiment("tiny")
    return build_datasets(cfg.data, cfg.seed, progress=False)[:2]


def _inject_nan_once(monkeypatch, module, fn_name, at_call):
    real = getattr(module, fn_name)
    calls = {"n": 0}

    def faulty(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        losses = out[0] if isinstance(out, tuple) else out
        if calls["n"] == at_call:
            losses["total"] = losses["total"] * float("nan")
        return out

    monkeypatch.setattr(module, fn_name, faulty)


@pytest.mark.parametrize("module, fn_name", [(phase1, "phase1_step"), (phase2, "anonymizer_losses")])
def test_nan_rolls_back_lowers_lr_and_finishes(tmp_path, tiny_data, monkeypatch, module, fn_name):
    _inject_nan_once(monkeypatch, module, fn_name, at_call=3)
    run = pipeline.prepare_run(load_experiment("tiny", ["train.phase1_epochs=2", "train.phase2_epochs=2"]),
                               tmp_path / "run")
    model = pipeline.train(run, tiny_data)
    events = run.read_log()
    rollbacks = [r for r in events if r["event"] == "rollback"]
    phase = 1 if module is phase1 else 2
    assert len(rollbacks) == 1 and rollbacks[0]["phase"] == phase and "nan" in rollbacks[0]["reason"]
    assert [r["epoch"] for r in events if r["event"] == "epoch" and r["phase"] == phase] == [1, 2]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    from stprivacy.training.checkpoint import load_state

    state = load_state(run.checkpoint(f"phase{phase}"))
    base = peak_lr(run.config().train)
    assert state["schedulers"]["anonymizer"]["base_lrs"][0] == pytest.approx(base * 0.5)


def test_persistent_divergence_stops_with_a_clear_error(tmp_path, tiny_data, monkeypatch):
    real = phase1.phase1_step

    def always_nan(*a, **k):
        losses = real(*a, **k)
        losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(phase1, "phase1_step", always_nan)
    run = pipeline.prepare_run(load_experiment("tiny", ["train.max_rollbacks=2"]), tmp_path / "run")
    with pytest.raises(TrainingDivergedError, match="diverged 3 times"):
        pipeline.train(run, tiny_data)
    assert sum(r["event"] == "rollback" for r in run.read_log()) == 2


def test_runaway_privacy_loss_counts_as_divergence(tmp_path, tiny_data):
    run = pipeline.prepare_run(load_experiment("tiny", ["train.max_privacy_bce=0.01", "train.max_rollbacks=1"]),
                               tmp_path / "run")
    with pytest.raises(TrainingDivergedError, match="bce_P"):
        pipeline.train(run, tiny_data)
