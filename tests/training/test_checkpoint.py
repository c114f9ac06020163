import pickle

import pytest
import torch

from stprivacy.errors import CheckpointError
from stprivacy.models import STPrivacy
from stprivacy.training.checkpoint import load_modules, load_state, read_metadata, save_checkpoint


def test_round_trip_weights_state_and_metadata(tmp_path):
    a = STPrivacy.from_preset("tiny", num_classes=3)
    opt = torch.optim.AdamW(a.parameters())
    a(torch.rand(2, 3, 8, 32, 32)).video.mean().backward()
    opt.step()
    save_checkpoint(tmp_path / "ck", {"anonymizer": a}, {"epoch": 3, "opt": opt.state_dict()}, {"phase": 1})
    b = STPrivacy.from_preset("tiny", num_classes=3)
    load_modules(tmp_path / "ck", {"anonymizer": b})
    for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), n
    assert load_state(tmp_path / "ck")["epoch"] == 3
    assert read_metadata(tmp_path / "ck") == {"phase": 1, "state_file": "ck.state-0.pt"}
    save_checkpoint(tmp_path / "ck", {"anonymizer": a}, {"epoch": 4}, {"phase": 1})
    assert load_state(tmp_path / "ck")["epoch"] == 4
    assert [p.name for p in tmp_path.glob("ck.state-*.pt")] == ["ck.state-1.pt"]
    assert not list(tmp_path.glob(".*tmp"))


def test_mismatched_model_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ck", {"anonymizer": STPrivacy.from_preset("tiny", num_classes=3)})
    with pytest.raises(CheckpointError, match="does not fit"):
        load_modules(tmp_path / "ck", {"anonymizer": STPrivacy.from_preset("tiny", num_classes=4)})


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/stprivacy_pwned",))


def test_malicious_pickle_state_executes_nothing(tmp_path):
    save_checkpoint(tmp_path / "ck", {"m": STPrivacy.from_preset("tiny")}, {"epoch": 1})
    (tmp_path / "ck.state-0.pt").write_bytes(pickle.dumps({"epoch": _Boom()}))
    with pytest.raises(CheckpointError, match="safely"):
        load_state(tmp_path / "ck")
    import os

    assert not os.path.exists("/tmp/stprivacy_pwned")


def test_corrupt_weights_file(tmp_path):
    (tmp_path / "ck.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError):
        load_modules(tmp_path / "ck", {"anonymizer": STPrivacy.from_preset("tiny")})


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = STPrivacy.from_preset("tiny")
    save_checkpoint(tmp_path / "ck", {"m": model}, {"epoch": 1})
    before = (tmp_path / "ck.safetensors").read_bytes()

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stprivacy.training.checkpoint.save_file", full_disk)
    with torch.no_grad():
        model.to_pixels.weight.add_(1)
    with pytest.raises(CheckpointError, match="No space"):
        save_checkpoint(tmp_path / "ck", {"m": model}, {"epoch": 2})
    assert (tmp_path / "ck.safetensors").read_bytes() == before
    assert not list(tmp_path.glob(".*tmp"))


def test_unwritable_checkpoint_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot create checkpoint folder"):
        save_checkpoint(blocker / "ckpts" / "phase1", {"m": STPrivacy.from_preset("tiny")}, {"epoch": 1})


def test_unwritable_run_folder_is_a_clear_error(tmp_path):
    from stprivacy.config import load_experiment
    from stprivacy.errors import ConfigError
    from stprivacy.pipeline import prepare_run

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create run folder"):
        prepare_run(load_experiment("tiny"), blocker / "run")
