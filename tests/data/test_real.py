"""A fake HMDB51 tree with the real video names (tiny generated clips), decoded through the real loaders."""

import dataclasses

import av
import numpy as np
import pytest
import torch

from stprivacy.config import load_experiment
from stprivacy.data import real
from stprivacy.data.build import build_datasets
from stprivacy.data.real import ClipSampling, DatasetReport, decode_clipset, split_entries
from stprivacy.data.splits import read_hmdb51_split
from stprivacy.data.vp_labels import load_vp_labels

CLASSES = ("climb", "climb_stairs", "wave")


def write_avi(path, frames: int = 12, size=(40, 30), seed: int = 0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(frames):
            img = np.full((size[1], size[0], 3), rng.integers(0, 255, 3), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def fake_hmdb(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("hmdb51")
    split_dir = root / "splits"
    split_dir.mkdir()
    real = shared_data / "splits" / "hmdb51"
    for cls in CLASSES:
        for k in (1, 2, 3):
            lines = (real / f"{cls}_test_split{k}.txt").read_text().splitlines()
            kept = [ln for ln in lines if ln.split()[1] != "0"][:6]
            (split_dir / f"{cls}_test_split{k}.txt").write_text("\n".join(kept) + "\n")
    split = read_hmdb51_split(split_dir, 1)
    for i, (cls, name) in enumerate(split.train + split.test):
        write_avi(root / "videos" / cls / name, frames=5 + i % 20, seed=i)
    return root, split


def test_fake_tree_decodes_into_views(fake_hmdb):
    root, split = fake_hmdb
    assert split.classes == sorted(CLASSES)
    train, test, report = split_entries(root / "videos", split, load_vp_labels("hmdb51"))
    assert report.found == len(split.train) + len(split.test) and not report.missing and not report.unlabelled
    sampling = ClipSampling(num_frames=8, stride=2, size=16, train_views=2, test_clips=5, test_crops=3)
    clips = decode_clipset(test, sampling, train=False, action_names=split.classes, attribute_names=("a",) * 5,
                           progress=False)
    assert tuple(clips.videos.shape[1:]) == (15, 3, 8, 16, 16)
    assert clips.names[0].split("/")[0] in CLASSES
    labels = load_vp_labels("hmdb51")
    assert np.array_equal(clips.attributes[0].numpy(), labels.row(clips.names[0]))


def test_missing_unreadable_and_cache(fake_hmdb, tmp_path):
    root, split = fake_hmdb
    train, _, _ = split_entries(root / "videos", split, load_vp_labels("hmdb51"))
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + b"\x00" * 100)
    train[0].path = broken
    report = DatasetReport()
    sampling = ClipSampling(num_frames=4, stride=1, size=16, train_views=1)
    kw = dict(train=True, action_names=split.classes, attribute_names=("a",) * 5, progress=False,
              cache_dir=tmp_path / "cache")
    clips = decode_clipset(train, sampling, report=report, **kw)
    assert report.unreadable == [str(broken)] and len(clips) == len(train) - 1
    again = decode_clipset(train, sampling, **kw)  # from the cache: the same frame pool, the same clips
    assert torch.equal(again.videos[:], clips.videos[:])
    assert list(again.names) == list(clips.names)
    fixed = dataclasses.replace(sampling, fresh_clips=False)
    views = decode_clipset(train, fixed, report=DatasetReport(), **kw)
    cached = decode_clipset(train, fixed, **kw)
    assert torch.equal(cached.videos[:], views.videos[:]) and len(cached) == len(train) - 1
    assert cached.videos.path.parent == tmp_path / "cache" and not list((tmp_path / "cache").glob("*partial*"))


def test_parallel_decoding_gives_the_same_clips_as_one_process(fake_hmdb, tmp_path):
    root, split = fake_hmdb
    train, _, _ = split_entries(root / "videos", split, load_vp_labels("hmdb51"))
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF" + b"\x00" * 100)
    train = [dataclasses.replace(e) for e in train[:6]] * 11  # enough videos for the worker pool
    train[2] = dataclasses.replace(train[2], path=broken)
    sampling = ClipSampling(num_frames=4, stride=2, size=16, train_views=2)
    kw = dict(train=True, action_names=split.classes, attribute_names=("a",) * 5, progress=False, seed=3)
    one_report, two_report = DatasetReport(), DatasetReport()
    one = decode_clipset(train, sampling, workers=1, report=one_report, **kw)
    two = decode_clipset(train, sampling, workers=2, report=two_report, **kw)
    assert len(train) >= real.MIN_VIDEOS_FOR_WORKERS
    assert torch.equal(one.videos[:], two.videos[:]) and one.names == two.names and len(one) == len(train) - 1
    assert one_report.unreadable == two_report.unreadable == [str(broken)]


def test_build_datasets_for_hmdb51_config(fake_hmdb):
    root, _ = fake_hmdb
    cfg = load_experiment("vp-hmdb51", [f"data.root={root / 'videos'}", f"data.split_dir={root / 'splits'}",
                                        "data.sampling.size=16", "data.sampling.num_frames=4"])
    train, test, report = build_datasets(cfg.data, 0, progress=False)
    assert len(train.action_names) == 3 and train.views == 1 and test.views == 15  # training clips: fresh
    assert report.found == len(train) + len(test)


def test_missing_videos_are_reported(fake_hmdb, tmp_path):
    _, split = fake_hmdb
    _, _, report = split_entries(tmp_path, split, load_vp_labels("hmdb51"))
    assert report.found == 0 and len(report.missing) == len(split.train) + len(split.test)
    assert "missing" in report.summary()


def test_data_check_cli(fake_hmdb, capsys, tmp_path):
    from stprivacy.cli import main

    root, _ = fake_hmdb
    assert main(["data", "check", "--preset", "vp-hmdb51", "--set", f"data.root={root / 'videos'}",
                 "--set", f"data.split_dir={root / 'splits'}", "--decode"]) == 0
    out = capsys.readouterr().out
    assert "3 classes" in out and "missing 0" in out and "unreadable 0" in out
    assert main(["data", "check", "--preset", "vp-hmdb51", "--set", f"data.root={tmp_path}",
                 "--set", f"data.split_dir={root / 'splits'}"]) == 0
    assert "found 0" in capsys.readouterr().out
    assert main(["data", "check", "--preset", "vp-hmdb51"]) == 2
    assert "data.root" in capsys.readouterr().err


def test_training_run_skips_and_lists_corrupt_videos(fake_hmdb, tmp_path):
    """A dataset with corrupt files trains to the end; the run log lists what was skipped."""
    import shutil

    from stprivacy import pipeline

    root, _ = fake_hmdb
    videos = tmp_path / "videos"
    shutil.copytree(root / "videos", videos)
    corrupt = sorted(videos.rglob("*.avi"))[:3]
    for i, path in enumerate(corrupt):
        path.write_bytes(b"" if i == 0 else b"RIFF" + bytes(range(256)) * 4)
    over = [f"data.root={videos}", f"data.split_dir={root / 'splits'}", "data.sampling.size=32",
            "data.sampling.num_frames=8", "data.sampling.train_views=1", "data.sampling.test_clips=1",
            "data.sampling.test_crops=1", "model.preset=tiny", "recognizer.preset=tiny", "train.phase1_epochs=1",
            "train.phase2_epochs=1", "train.batch_size=8", "train.lr=0.001"]
    run = pipeline.prepare_run(load_experiment("vp-hmdb51", over), tmp_path / "run")
    pipeline.train(run)
    data_event = next(r for r in run.read_log() if r["event"] == "data")
    assert sorted(data_event["unreadable"]) == sorted(str(p) for p in corrupt)
    assert run.read_log()[-1]["event"] == "trained"
