"""End to end on the tiny preset: every phase for a step or two, resuming, reports, the CLI."""

import json

import pytest
import torch

from stprivacy import pipeline
from stprivacy.cli import main
from stprivacy.config import load_experiment
from stprivacy.data.build import build_datasets
from stprivacy.evaluation import phase3
from stprivacy.training.checkpoint import load_state
from stprivacy.training.erasure import MAX_PRODUCT_READER_LIVE
from stprivacy.training.run_dir import RunDir


@pytest.fixture(scope="module")
def tiny_data():
    cfg = load_experiment("tiny")
    train, test, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    return train, test


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_logs_checkpoints_each_phase(tmp_path, tiny_data):
    run = pipeline.prepare_run(load_experiment("tiny"), tmp_path / "run")
    pipeline.train(run, tiny_data)
    for name in ("phase1", "phase2", "anonymizer"):
        assert (run.path / "checkpoints" / f"{name}.safetensors").is_file()
    log = run.read_log()
    phases = [r["phase"] for r in log if r["event"] == "epoch"]
    assert phases == [1, 2]
    p2 = next(r for r in log if r["event"] == "epoch" and r["phase"] == 2)
    assert {"spars", "ce_A", "bce_P", "total"} <= set(p2)
    assert load_state(run.checkpoint("phase2"))["epoch"] == 1


@pytest.mark.parametrize("phase, epoch", [(1, 1), (2, 1)])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_data, monkeypatch, phase, epoch):
    over = ["train.phase1_epochs=2", "train.phase2_epochs=2"]
    full = pipeline.prepare_run(load_experiment("tiny", over), tmp_path / "full")
    uninterrupted = _weights(pipeline.train(full, tiny_data))

    # the same run, killed right after the checkpoint of `epoch` in `phase` was written
    from stprivacy.training import epochs as epochs_module

    real_save = epochs_module.save_checkpoint

    def save_then_die(stem, modules, state=None, metadata=None):
        real_save(stem, modules, state, metadata)
        if (metadata["phase"], metadata["epoch"]) == (phase, epoch):
            raise KeyboardInterrupt

    monkeypatch.setattr(epochs_module, "save_checkpoint", save_then_die)
    killed = pipeline.prepare_run(load_experiment("tiny", over), tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        pipeline.train(killed, tiny_data)
    monkeypatch.undo()
    assert not killed.checkpoint("anonymizer").with_suffix(".safetensors").exists()
    resumed = _weights(pipeline.train(pipeline.prepare_run(load_experiment("tiny", over), killed.path), tiny_data))
    for k in uninterrupted:
        torch.testing.assert_close(resumed[k], uninterrupted[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("preset", ["vp-hmdb51", "vp-ucf101", "pa-hmdb51", "hmdb51-to-ucf101", "ucf101-to-hmdb51"])
def test_paper_presets_warn_when_they_train_from_scratch(preset):
    init = pipeline.initialisation(load_experiment(preset))
    assert init["start"] == {"anonymizer": "scratch", "recognizers": "scratch"} and len(init["warnings"]) == 2
    weights = ["model.pretrained=/w/deit_s.pth", "recognizer.pretrained=/w/deit_s.pth"]
    assert pipeline.initialisation(load_experiment(preset, weights))["warnings"] == []
    assert pipeline.initialisation(load_experiment("synth-quick"))["warnings"] == []


def test_evaluation_report_schema_and_resume(tmp_path, tiny_data, monkeypatch):
    # as a paper preset without its ImageNet weights: the start is warned about and recorded
    run = pipeline.prepare_run(load_experiment("tiny", ["model.pretrained_expected=true"]), tmp_path / "run")
    pipeline.train(run, tiny_data)
    assert any(r["event"] == "warning" and "model.pretrained" in r["message"] for r in run.read_log())
    ridge_fits = []
    real_ridge = phase3.ridge_attack
    monkeypatch.setattr(phase3, "ridge_attack", lambda *a, **k: ridge_fits.append(1) or real_ridge(*a, **k))
    report = pipeline.evaluate(run, tiny_data)
    assert len(ridge_fits) == 3  # one per method, shared by its two seeds: it does not depend on the seed
    assert {"dataset", "attributes", "chance_cmap", "methods", "initialisation", "warnings"} <= set(report)
    assert report["initialisation"]["anonymizer"] == "scratch" and len(report["warnings"]) == 1
    warning = "**Warning:** model.pretrained is not set: the anonymizer starts from random"
    assert warning in (run.path / "report.md").read_text()
    names = [(m["name"], m["keep_ratio"]) for m in report["methods"]]
    assert names == [("raw", None), ("stprivacy", 1.0), ("stprivacy", 0.7)]
    for m in report["methods"]:
        assert set(m["attackers"]) == {"vit", "frame", "ridge"}
        tag = m["name"] if m["keep_ratio"] is None else f"{m['name']}_a{m['keep_ratio']:g}"
        per_seed = [json.loads(p.read_text())["attackers"] for p in run.eval_dir.glob(f"{tag}_seed*.json")]
        worst = [max(a["cmap"] for a in attackers.values()) for attackers in per_seed]
        assert len(worst) == 2 and m["privacy_cmap"] == pytest.approx(sum(worst) / 2)
        assert m["seeds"] == [0, 1] and len(m["attackers"]["vit"]["per_attribute_ap"]) == 5
    for f in ("report.json", "report.md", "tradeoff.png"):
        assert (run.path / f).stat().st_size > 100
    # a second evaluation reuses every saved result and trains nothing
    monkeypatch.setattr(phase3, "fit", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(pipeline, "evaluate_clips", lambda *a, **k: pytest.fail("re-evaluated"))
    assert pipeline.evaluate(run, tiny_data)["methods"] == report["methods"]


def test_an_attacker_added_after_the_fact_is_the_only_thing_evaluated(tmp_path, tiny_data, monkeypatch):
    run = pipeline.prepare_run(load_experiment("tiny", ["evaluate.attackers=[vit]", "evaluate.seeds=1"]),
                               tmp_path / "run")
    pipeline.train(run, tiny_data)
    before = {(m["name"], m["keep_ratio"]): m for m in pipeline.evaluate(run, tiny_data)["methods"]}
    pipeline.reconfigure(run, ["evaluate.attackers=[vit,ridge,subspace]"])
    fitted = []
    monkeypatch.setattr(phase3, "fit", lambda *a, **k: fitted.append(k.get("desc")))  # no recognizer retrains
    after = pipeline.evaluate(run, tiny_data)["methods"]
    assert fitted == []
    for m in after:
        old = before[(m["name"], m["keep_ratio"])]
        assert list(m["attackers"]) == ["vit", "ridge", "subspace"]
        assert m["action_top1"] == old["action_top1"] and m["attackers"]["vit"] == old["attackers"]["vit"]
        assert m["coverage"] == old["coverage"] and m["keep_pattern"] == old["keep_pattern"]
        ridge, subspace = m["attackers"]["ridge"]["cmap"], m["attackers"]["subspace"]["cmap"]
        assert 0 < ridge <= 100 and 0 < subspace <= 100
        assert m["privacy_cmap"] == pytest.approx(max(ridge, subspace, old["privacy_cmap"]))
    judged = json.loads(next(run.eval_dir.glob("raw_seed0.json")).read_text())["attackers"]["subspace"]
    assert judged["settings"] == {"tubelet": [2, 8, 8], "rank": 2, "scores": 64,
                                 "reader": "quadratic"}  # the anonymizer's tubelets
    # and one taken away leaves the worst case to the others
    pipeline.reconfigure(run, ["evaluate.attackers=[ridge]"])
    only = pipeline.evaluate(run, tiny_data)["methods"]
    assert all(list(m["attackers"]) == ["ridge"] for m in only)
    # a ridge saved with another grid is judged again, and says which grid it was
    saved = json.loads(next(run.eval_dir.glob("raw_seed0.json")).read_text())
    assert saved["attackers"]["ridge"]["settings"] == {"cells": 16, "alpha": 1e-3, "moments": 2}
    pipeline.reconfigure(run, ["evaluate.ridge_cells=4", "evaluate.ridge_moments=1"])
    pipeline.evaluate(run, tiny_data)
    again = json.loads(next(run.eval_dir.glob("raw_seed0.json")).read_text())
    assert again["attackers"]["ridge"]["settings"] == {"cells": 4, "alpha": 1e-3, "moments": 1}
    assert list(again["attackers"]) == ["ridge"] and again["action_top1"] == saved["action_top1"] and fitted == []


def test_attackers_see_only_inference_mode_uint8_clips(tmp_path, tiny_data, monkeypatch):
    from stprivacy.layers import video_to_tubelets
    from stprivacy.models import STPrivacy

    run = pipeline.prepare_run(load_experiment("tiny", ["evaluate.seeds=1", "evaluate.baselines=[]"]),
                               tmp_path / "run")
    pipeline.train(run, tiny_data)
    monkeypatch.setattr(STPrivacy, "_forward_masked", lambda *a, **k: pytest.fail("training-mode output in phase 3"))
    seen = []
    real = pipeline.evaluate_clips

    def spy(name, ratio, train, test, cfg, seed, saved=None, seed_free=None):
        seen.append((ratio, train, test))
        return real(name, ratio, train, test, cfg, seed, saved, seed_free)

    monkeypatch.setattr(pipeline, "evaluate_clips", spy)
    pipeline.evaluate(run, tiny_data)
    for ratio, train, test in seen:
        for clips in (train, test):
            assert clips.videos.dtype == torch.uint8
            assert not any(isinstance(v, torch.nn.Module) for v in vars(clips).values())
            tub = video_to_tubelets(clips.videos[:, 0].float(), (2, 8, 8)).reshape(len(clips), 4, 16, -1)
            dropped = clips.keep_masks[:, 0] == 0
            assert torch.count_nonzero(tub[dropped]) == 0
            if ratio < 1:
                assert dropped.any()
            # the mask that travels with the clip is what the video itself shows
            assert torch.equal(tub.abs().sum(-1) > 0, ~dropped) or ratio == 1.0


def test_cli_benchmark_and_errors(tmp_path, capsys):
    assert main(["benchmark", "--preset", "tiny", "--out", str(tmp_path / "b"), "--set", "evaluate.seeds=1"]) == 0
    out = capsys.readouterr().out
    assert "| raw |" in out and "| stprivacy | 0.70 |" in out
    assert main(["evaluate", "--run", str(tmp_path / "b")]) == 0
    assert main(["train", "--preset", "tiny", "--out", str(tmp_path / "c"), "--set", "train.nope=1"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "missing")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_train_and_restart_from_cli(tmp_path):
    out = str(tmp_path / "r")
    assert main(["train", "--preset", "tiny", "--out", out]) == 0
    assert main(["train", "--preset", "tiny", "--out", out]) == 0  # nothing left to do: resumes and returns
    assert [r["event"] for r in RunDir(out).read_log()][-2:] == ["trained", "resume"]
    assert main(["train", "--preset", "tiny", "--out", out, "--restart"]) == 0
    assert [r["event"] for r in RunDir(out).read_log()][0] == "start"


def test_linear_erasure_is_fitted_after_phase_2_saved_and_warned_about_where_absent(tmp_path, tiny_data, caplog):
    cfg = load_experiment("tiny", ["train.phase2_output_rank=2", "train.linear_erasure=true",
                                   "train.erasure_keep_ratios=[0.7,0.4]", "train.erasure_second_order=true",
                                   "train.erasure_guard_only_keep_ratios=[0.4]"])
    run = pipeline.prepare_run(cfg, tmp_path / "run")
    trained = pipeline.train(run, tiny_data, val=tiny_data[1])
    assert trained.eraser_ratios() == [0.4, 0.7]
    assert all(e.guard is not None for e in trained.erasers.values())  # train.erasure_second_order
    directions = {round(float(e.keep_ratio), 6): e.left.shape[1] for e in trained.erasers.values()}
    assert directions[0.4] == 0 and directions[0.7] > 0  # train.erasure_guard_only_keep_ratios: the guard alone
    fitted = [r for r in run.read_log() if r["event"] == "linear_erasure"]
    assert fitted and fitted[0]["clips"] == len(tiny_data[0])
    # the instrument: linear probes of the validation clips' coefficients before and after erasure
    assert {f"val_linear_{w}_a0.7" for w in ("before", "after", "after_squares", "after_quadratic")} <= set(fitted[0])
    # and what it cost the action, as a linear reader of the coefficients sees it (top-1 in %)
    assert all(0 <= fitted[0][f"val_linear_action_{w}_a0.7"] <= 100 for w in ("before", "after"))
    # the reader of every product, fitted on train, where the clip's live coefficients are few enough to pair up
    live = len(next(iter(trained.erasers.values())).live)
    assert ("val_products_after_a0.7" in fitted[0]) == (live <= MAX_PRODUCT_READER_LIVE)
    assert ("val_mlp_after_a0.7" in fitted[0]) == (live <= MAX_PRODUCT_READER_LIVE)  # and the MLP reader beside it
    loaded = pipeline.load_anonymizer(run.path)  # a fresh anonymizer builds its erasers from the checkpoint
    video = tiny_data[1].videos[:4, 0].float() / 255
    assert torch.allclose(loaded.anonymize(video, 0.7)[0], trained.eval().anonymize(video, 0.7)[0], atol=1e-5)
    assert torch.allclose(loaded.anonymize(video, 0.4)[0], trained.anonymize(video, 0.4)[0], atol=1e-5)
    assert pipeline.warn_unerased(loaded, [1.0, 0.7, 0.4], "evaluate.keep_ratios") == [1.0]
    assert "published without a linear eraser" in caplog.text
