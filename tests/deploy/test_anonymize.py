import json

import av
import numpy as np
import pytest
import torch

from stprivacy.cli import main
from stprivacy.deploy import Framing, anonymize_file, anonymize_frames, pick_keep_ratio
from stprivacy.errors import STPrivacyError
from stprivacy.models import STPrivacy

SECRETS = {"title": "Alice at home", "comment": "GPS 51.5007N 0.1246W", "location": "+51.5007-000.1246/",
           "creation_time": "2026-01-02T03:04:05.000000Z", "artist": "Bob Secret"}


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return STPrivacy.from_preset("tiny").eval()


@pytest.fixture(scope="module")
def tagged_clip(shared_data, tmp_path_factory):
    """The first 37 frames of vtest.avi re-muxed with private metadata and an audio track."""
    out = tmp_path_factory.mktemp("src") / "tagged.mkv"
    with av.open(str(shared_data / "real_videos" / "vtest.avi")) as src, av.open(str(out), "w") as dst:
        dst.metadata.update(SECRETS)
        v = dst.add_stream("ffv1", rate=10)
        v.width, v.height, v.pix_fmt = 768, 576, "yuv420p"
        v.metadata.update({"handler_name": "Alice camera", "encoder": "SecretCam 1.0"})
        a = dst.add_stream("aac", rate=8000)
        a.layout = "mono"
        for i, frame in enumerate(src.decode(video=0)):
            if i == 37:
                break
            for p in v.encode(frame.reformat(format="yuv420p")):
                dst.mux(p)
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 8000 * 3), np.float32), format="fltp", layout="mono")
        samples.sample_rate = 8000
        for p in a.encode(samples):
            dst.mux(p)
        for s in (v, a):
            for p in s.encode():
                dst.mux(p)
    return out


def test_file_output_has_no_metadata_no_audio_and_every_frame(tiny_model, tagged_clip, tmp_path):
    dst = tmp_path / "anon.mp4"
    n = anonymize_file(tiny_model, tagged_clip, dst, keep_ratio=0.7)
    assert n == 37
    with av.open(str(dst)) as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        tags = {**c.metadata, **c.streams.video[0].metadata}
    assert len(frames) == 37 and frames[0].shape == (24, 32, 3)  # 768x576 letterboxed into 32x32, bars cropped
    blob = dst.read_bytes()
    for value in [*SECRETS.values(), "Alice camera", "SecretCam"]:
        assert value.encode() not in blob, value
    assert not set(tags) & set(SECRETS)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_dropped_tubelets_are_exactly_zero_in_streamed_frames(tiny_model, shared_data, precision):
    """Also under bf16 autocast (a GPU's default): the keep decision of that forward pass is what blackens."""
    from stprivacy.data.video_io import iter_frames
    from stprivacy.runtime import RuntimeConfig

    frames = []
    for f in iter_frames(shared_data / "real_videos" / "vtest.avi"):
        frames.append(f)
        if len(frames) == 8:
            break
    framing = Framing(32, 576, 768)
    runtime = RuntimeConfig(device="cpu", precision=precision)
    out = np.stack(list(anonymize_frames(tiny_model, frames, 0.7, framing=framing, runtime=runtime)))
    with runtime.autocast(torch.device("cpu")):
        _, keep = tiny_model.anonymize(framing.to_model(np.stack(frames)).unsqueeze(0), 0.7)
    top, left, h, w = framing.content
    full = np.zeros((8, 32, 32, 3), np.uint8)
    full[:, top:top + h, left:left + w] = out
    tub = full.reshape(4, 2, 4, 8, 4, 8, 3).transpose(0, 2, 4, 1, 3, 5, 6).reshape(4, 16, -1)
    dropped = keep[0].numpy() == 0
    assert dropped.any() and np.count_nonzero(tub[dropped]) == 0
    assert np.count_nonzero(tub[~dropped]) > 0


def test_windows_batched_together_give_the_frames_each_window_gives_alone(tiny_model):
    from stprivacy.deploy import Tiling

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(37)]  # 4 windows of 8 and 5
    for kwargs in ({}, {"stride": 2}, {"framing": Tiling(tiny_model.cfg.img_size, 24, 32, 2.0)},
                   {"side_by_side": True}):
        alone = list(anonymize_frames(tiny_model, frames, 0.7, **kwargs))
        batched = list(anonymize_frames(tiny_model, frames, 0.7, windows_per_batch=3, **kwargs))
        assert len(batched) == len(alone) == 37
        assert all(np.array_equal(a, b) for a, b in zip(alone, batched, strict=True)), kwargs
    with pytest.raises(STPrivacyError, match="windows per batch"):
        next(anonymize_frames(tiny_model, frames, 0.7, windows_per_batch=0))


def test_streaming_reads_at_most_one_window_ahead(tiny_model):
    pulled = 0

    def camera():
        nonlocal pulled
        while True:
            pulled += 1
            yield np.full((30, 40, 3), pulled % 255, np.uint8)

    stream = anonymize_frames(tiny_model, camera(), 0.7)
    for i in range(50):
        next(stream)
        assert pulled <= i + 1 + tiny_model.cfg.num_frames


def test_side_by_side_is_three_panels(tiny_model):
    frames = [np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8) for i in range(10)]
    out = list(anonymize_frames(tiny_model, frames, 0.7, side_by_side=True))
    assert len(out) == 10 and out[0].shape == (24, 96, 3)


def _report(tmp_path, curve):
    methods = [{"name": "stprivacy", "keep_ratio": a, "privacy_cmap": c, "action_top1": 90.0} for a, c in curve]
    (tmp_path / "report.json").write_text(json.dumps({"methods": methods}))


def test_pick_keep_ratio_from_the_measured_curve(tmp_path):
    _report(tmp_path, [(1.0, 80.0), (0.7, 64.0), (0.4, 55.0)])
    assert pick_keep_ratio(tmp_path, 65) == 0.7
    assert pick_keep_ratio(tmp_path, 90) == 1.0
    with pytest.raises(STPrivacyError, match="a=0.4: 55.0"):
        pick_keep_ratio(tmp_path, 50)


def test_cli_anonymize_end_to_end_and_errors(tmp_path, tagged_clip, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--out", str(run)]) == 0
    out = tmp_path / "out.mp4"
    assert main(["anonymize", "--run", str(run), "--keep-ratio", "0.7", str(tagged_clip), "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.avi").write_bytes(b"RIFF0000AVI junk")
    assert main(["anonymize", "--run", str(run), str(folder), "-o", str(tmp_path / "o")]) == 2
    assert "broken.avi" in capsys.readouterr().err
    assert main(["anonymize", "--run", str(run), "--keep-ratio", "0.1", str(tagged_clip), "-o", str(out)]) == 2
    assert "keeps no token" in capsys.readouterr().err
    if not torch.cuda.is_available():  # a GPU asked for where there is none: a clear error, not a torch trace
        assert main(["anonymize", "--run", str(run), "--device", "cuda", str(tagged_clip), "-o", str(out)]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["anonymize", "--run", str(run), str(tagged_clip), "-o", str(blocker / "x.mp4")]) == 2
    assert "cannot write video" in capsys.readouterr().err
    assert main(["anonymize", "--run", str(tmp_path / "none"), str(tagged_clip), "-o", str(out)]) == 2
    assert main(["anonymize", "--run", str(run), "--max-cmap", "50", str(tagged_clip), "-o", str(out)]) == 2
    assert "evaluate" in capsys.readouterr().err


def test_tiling_round_trip_and_tiled_anonymization(tiny_model):
    from stprivacy.deploy import Tiling

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 50, 70, 3), dtype=np.uint8)
    tiling = Tiling(32, 50, 70, scale=1.0)
    batch = tiling.batch(frames)
    assert batch.shape == (2 * 3, 3, 8, 32, 32)
    assert np.array_equal(tiling.unbatch(batch), frames)  # exact at native scale
    out = list(anonymize_frames(tiny_model, list(frames), 0.7, framing=tiling))
    assert len(out) == 8 and out[0].shape == (50, 70, 3)
    half = Tiling(32, 50, 70, scale=0.5)
    assert half.grid == (1, 2) and half.unbatch(half.batch(frames)).shape == (8, 25, 35, 3)


def test_frame_stride_anonymizes_interleaved_clips_and_keeps_every_frame_in_order(tiny_model):
    """With stride 2 the model sees frames 0, 2, 4, ... and 1, 3, 5, ... as clips (motion at a stride-2 training
    time scale) and every input frame comes out once, in place, the last partial window included."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(37)]  # 2 windows of 16 + 5
    out = list(anonymize_frames(tiny_model, frames, 0.7, stride=2))
    assert len(out) == 37
    length = tiny_model.cfg.num_frames  # 8
    # the second window's odd frames (17, 19, ..., 31) form one clip: anonymized alone they give the same frames
    alone = list(anonymize_frames(tiny_model, frames[17:32:2], 0.7))
    for k, frame in enumerate(alone):
        assert np.array_equal(out[17 + 2 * k], frame)
    # the last window holds frames 32..36: its even clip is 32, 34, 36 padded by repeating 36
    padded = frames[32:37:2] + [frames[36]] * (length - 3)
    tail = list(anonymize_frames(tiny_model, padded, 0.7))
    for k, i in enumerate((32, 34, 36)):
        assert np.array_equal(out[i], tail[k])
    # stride 1 is the consecutive-window behaviour, and it differs from stride 2
    consecutive = list(anonymize_frames(tiny_model, frames, 0.7))
    assert np.array_equal(consecutive[8], list(anonymize_frames(tiny_model, frames[8:16], 0.7))[0])
    assert not all(np.array_equal(a, b) for a, b in zip(out, consecutive, strict=True))
    with pytest.raises(STPrivacyError, match="stride"):
        next(anonymize_frames(tiny_model, frames, 0.7, stride=0))


def test_training_stride_comes_from_the_run(tmp_path):
    from stprivacy.config import load_experiment
    from stprivacy.deploy import training_stride
    from stprivacy.training.run_dir import RunDir

    for preset, expected in (("tiny", 1), ("vp-hmdb51", 2)):
        run = RunDir(tmp_path / preset)
        run.create(load_experiment(preset))
        assert training_stride(run.path) == expected


def test_publication_noise_is_not_drawn_from_a_seed_an_attacker_knows():
    from stprivacy.data.clips import ClipSet
    from stprivacy.runtime import RuntimeConfig
    from stprivacy.training.erasure import fit_erasers

    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", selection="prior", output_rank=2).eval()
    model.set_keep_prior(torch.rand_like(model.keep_prior))
    clips = ClipSet((torch.rand(24, 3, 8, 32, 32) * 255).to(torch.uint8), torch.zeros(24, dtype=torch.long),
                    (torch.rand(24, 2) < 0.5).long())
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(8)]

    def twice():  # the same frames, each time after the same seed a caller (or torch at start-up) set
        outs = []
        for _ in range(2):
            torch.manual_seed(0)
            outs.append(np.stack(list(anonymize_frames(model, frames, 0.7))))
        return outs

    quiet = twice()
    assert not model.publishes_noise() and np.array_equal(*quiet)  # without noise: deterministic
    fit_erasers(model, clips, [0.7], RuntimeConfig(), second_order=True, noise={0.7: 0.5})
    assert model.publishes_noise()
    first, second = twice()
    assert not np.array_equal(first, second)  # reseeded from the OS: a known seed does not give the draw back
