"""The CLI forgives a wrong first try and ends every user error with exit code 2 and one line."""

import pytest
import torch

from stprivacy.cli import main
from stprivacy.config import load_experiment
from stprivacy.data.build import build_datasets
from stprivacy.data.disk import DiskVideos
from stprivacy.evaluation.phase3 import anonymize_clips
from stprivacy.pipeline import load_anonymizer
from stprivacy.training.run_dir import RunDir


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("stprivacy: "), err
    return err[0]


@pytest.mark.parametrize("argv", [
    ["train", "--preset", "no-such-preset", "--out", "{tmp}/a"],
    ["train", "--preset", "tiny", "--out", "{tmp}/a", "--set", "train.nope=1"],
    ["benchmark", "--preset", "tiny", "--out", "{tmp}/a", "--set", "train.lr=fast"],
    ["evaluate", "--run", "{tmp}/missing"],
    ["anonymize", "--run", "{tmp}/missing", "{tmp}/none.mp4", "-o", "{tmp}/o.mp4"],
    ["export-onnx", "--run", "{tmp}/missing", "-o", "{tmp}/a.onnx"],
    ["synth", "--preset", "synth-quick", "--out", "{tmp}/s"],
    ["data", "check", "--preset", "vp-hmdb51"],
])
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    _one_error_line(capsys)


def test_a_failed_first_try_can_be_corrected_with_overrides(tmp_path, capsys):
    out = str(tmp_path / "run")
    # the first try fails before anything is trained (the data it names does not exist)
    assert main(["train", "--preset", "tiny", "--out", out, "--set", "data.kind=manifest"]) == 2
    _one_error_line(capsys)
    assert RunDir(out).exists()
    # the corrected command starts the run with the corrected settings instead of "resuming" the broken one
    assert main(["train", "--preset", "tiny", "--out", out]) == 0
    assert RunDir(out).config().data.kind == "synthetic"


def test_resuming_with_other_training_settings_is_refused_and_names_them(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--preset", "tiny", "--out", out]) == 0
    capsys.readouterr()
    assert main(["train", "--preset", "tiny", "--out", out, "--set", "train.lambda_p=1.0",
                 "--set", "runtime.threads=1"]) == 2
    line = _one_error_line(capsys)
    assert "train.lambda_p" in line and "runtime.threads" not in line.split("; ")[0]
    # paths and machine settings alone may change on resume
    assert main(["train", "--preset", "tiny", "--out", out, "--set", "runtime.threads=1"]) == 0
    assert RunDir(out).config().runtime.threads == 1


def test_evaluate_takes_keep_ratios_and_phase3_overrides(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--preset", "tiny", "--out", out]) == 0
    assert main(["evaluate", "--run", out, "--keep-ratio", "0.5", "--set", "evaluate.seeds=1",
                 "--set", "evaluate.baselines=[]", "--set", "evaluate.keep_views=true"]) == 0
    cfg = RunDir(out).config()
    assert cfg.evaluate.keep_ratios == (0.5,) and cfg.evaluate.seeds == 1
    assert (tmp_path / "run" / "eval" / "stprivacy_a0.5_seed0.json").is_file()
    # the judged views were kept, and they are what the anonymizer publishes
    kept = DiskVideos.open(tmp_path / "run" / "eval" / "views" / "stprivacy_a0.5-test.u8")
    test = build_datasets(cfg.data, cfg.seed, progress=False)[1]
    published = anonymize_clips(load_anonymizer(out), test, 0.5, cfg.runtime)
    assert torch.equal(kept[:], published.videos)
    capsys.readouterr()
    # what trained the anonymizer cannot change under it
    assert main(["evaluate", "--run", out, "--set", "model.keep_ratio=0.5"]) == 2
    assert "model.keep_ratio" in _one_error_line(capsys)
    assert load_experiment(RunDir(out).config_path).model.keep_ratio == 0.7
