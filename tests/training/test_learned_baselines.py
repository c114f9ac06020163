"""Training the learned baselines on the tiny preset: objectives, checkpoints, restarts, loading, phase 3."""

import pytest
import torch

from stprivacy import pipeline
from stprivacy.config import load_experiment
from stprivacy.data.build import build_datasets
from stprivacy.losses import binary_entropy, nt_xent
from stprivacy.models.baselines import build_learned_baseline
from stprivacy.training import baselines as training_baselines
from stprivacy.training.baselines import OBJECTIVES, train_learned_baseline
from stprivacy.training.checkpoint import checkpoint_exists


@pytest.fixture(scope="module")
def tiny_data():
    cfg = load_experiment("tiny")
    train, test, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    return train, test


def test_privacy_terms_are_the_published_objectives():
    cfg = load_experiment("tiny", ["baselines.vita.gamma=2.0", "baselines.bdq.alpha=3.0", "baselines.spact.omega=0.5"])
    video = torch.rand(4, 3, 8, 32, 32)
    batch = {"attributes": torch.randint(0, 2, (4, 5))}

    vita = OBJECTIVES["vita"](cfg, 5)
    vita.adversary.eval()
    entropies = [binary_entropy(m(video)).item() for m in vita.adversary]
    assert len(entropies) == 2
    assert vita.privacy_term(video, batch)["privacy_term"].item() == pytest.approx(2.0 * max(-h for h in entropies))

    bdq = OBJECTIVES["bdq"](cfg, 5)
    bdq.adversary.eval()
    h = binary_entropy(bdq.adversary[0](video)).item()
    assert bdq.privacy_term(video, batch)["privacy_term"].item() == pytest.approx(-3.0 * h, rel=1e-5)

    spact = OBJECTIVES["spact"](cfg, 5)
    spact.adversary.eval()
    state = spact.views.get_state()
    term = spact.privacy_term(video, batch)
    spact.views.set_state(state)
    from stprivacy.models.baselines.spact import two_views

    v1, v2 = two_views(video, spact.views)
    expected = -0.5 * nt_xent(spact.adversary(v1), spact.adversary(v2), cfg.baselines.spact.temperature)
    assert term["privacy_term"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["vita", "spact", "bdq"])
def test_each_learned_baseline_trains_saves_and_loads(tmp_path, tiny_data, monkeypatch, name):
    cfg = load_experiment("tiny", ["baselines.epochs=2"])
    run = pipeline.prepare_run(cfg, tmp_path / "run")

    before = {}

    def build_and_remember(*args, **kwargs):  # the very network that will be trained, before training
        net = build_learned_baseline(*args, **kwargs)
        before.update({k: v.detach().clone() for k, v in net.state_dict().items()})
        return net

    monkeypatch.setattr(training_baselines, "build_learned_baseline", build_and_remember)
    trained = train_learned_baseline(name, tiny_data[0], cfg, run)
    assert not trained.training
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{name}: training changed no weight"
    assert checkpoint_exists(run.checkpoint(name)) and checkpoint_exists(run.checkpoint(f"{name}_train"))
    epochs = [r for r in run.read_log() if r["event"] == "epoch" and r["phase"] == name]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert {"ce", "privacy_term", "total"} <= set(epochs[0])
    assert any(k.startswith("adv_") for k in epochs[0])
    if name == "spact":
        assert any(r["event"] == "epoch" and r["phase"] == "spact pretrain" for r in run.read_log())
    if name == "vita":  # restart_every 1 in the tiny preset: the ensemble is re-initialised before epoch 2
        assert [r["epoch"] for r in run.read_log() if r["event"] == "privacy_restart"] == [2]

    # a second call loads the saved transform and trains nothing
    monkeypatch.setattr(training_baselines, "run_epochs", lambda **_: pytest.fail("trained again"))
    again = train_learned_baseline(name, tiny_data[0], cfg, run)
    for k, v in again.state_dict().items():
        torch.testing.assert_close(v, trained.state_dict()[k])


def test_learned_baselines_go_through_phase3_and_the_report(tmp_path, tiny_data):
    cfg = load_experiment("tiny", ["evaluate.baselines=[raw, bdq]", "evaluate.seeds=1", "evaluate.keep_ratios=[0.7]"])
    run = pipeline.prepare_run(cfg, tmp_path / "run")
    pipeline.train(run, tiny_data)
    report = pipeline.evaluate(run, tiny_data)
    names = [m["name"] for m in report["methods"]]
    assert names == ["raw", "bdq", "stprivacy"]
    assert (run.eval_dir / "bdq_seed0.json").is_file()
    bdq = next(m for m in report["methods"] if m["name"] == "bdq")
    assert 0 <= bdq["action_top1"] <= 100 and set(bdq["attackers"]) == {"vit", "frame", "ridge"}


def test_a_network_that_cannot_take_the_clips_is_a_config_error_before_training(tmp_path, tiny_data):
    from stprivacy.errors import ConfigError

    cfg = load_experiment("tiny", ["baselines.vita.widths=[4, 8, 8, 8, 8, 8, 8]"])  # 2^6 does not divide 32
    run = pipeline.prepare_run(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"baseline vita cannot take 8x32x32 clips.*baselines.vita"):
        train_learned_baseline("vita", tiny_data[0], cfg, run)
    assert not (run.path / "checkpoints").exists()
