"""Fuzzing the parsers and the video reader with random and mutated inputs (hypothesis).

Every input must either parse or raise the project's documented error; nothing may be written outside the test's
folder. The number of inputs per target is ``FUZZ_EXAMPLES`` (raise it locally with STPRIVACY_FUZZ_EXAMPLES).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stprivacy.config import ExperimentConfig, from_dict, load_experiment
from stprivacy.data.manifest import read_manifest
from stprivacy.data.pa_hmdb51 import load_pa_hmdb51
from stprivacy.data.splits import read_hmdb51_split, read_ucf101_split
from stprivacy.data.video_io import read_video, write_video
from stprivacy.errors import ConfigError, LabelError, VideoReadError

FUZZ_EXAMPLES = int(os.environ.get("STPRIVACY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

csv_text = st.text(alphabet=st.sampled_from(list("video,label,face,01\n\r ../a.mp4\"x\x00é#")), max_size=300)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _nothing_written(root: Path, before: set) -> None:
    assert {p for p in root.rglob("*")} == before


@FUZZ
@given(text=csv_text)
def test_manifest_parser(sandbox, text):
    path = sandbox / "m.csv"
    path.write_text(text, encoding="utf-8")
    before = set(sandbox.rglob("*"))
    try:
        m = read_manifest(path)
        assert all(e.path.is_relative_to(sandbox.resolve()) for e in m.entries)
    except LabelError:
        pass
    _nothing_written(sandbox, before)


@FUZZ
@given(text=st.text(max_size=200), name=st.sampled_from(["wave_test_split1.txt", "a_b_test_split1.txt"]))
def test_hmdb51_split_parser(sandbox, text, name):
    d = sandbox / "s"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    try:
        split = read_hmdb51_split(d, 1)
        assert len(split.train) + len(split.test) <= text.count("\n") + 1
    except LabelError:
        pass


@FUZZ
@given(class_ind=st.text(max_size=120), train=st.text(max_size=120), test=st.text(max_size=120))
def test_ucf101_split_parser(sandbox, class_ind, train, test):
    d = sandbox / "u"
    d.mkdir(exist_ok=True)
    (d / "classInd.txt").write_text(class_ind, encoding="utf-8")
    (d / "trainlist01.txt").write_text(train, encoding="utf-8")
    (d / "testlist01.txt").write_text(test, encoding="utf-8")
    try:
        read_ucf101_split(d, 1)
    except LabelError:
        pass


json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=5),
                           lambda children: st.lists(children, max_size=4) | st.dictionaries(
                               st.sampled_from(["face", "gender", "skin_color", "nudity", "relationship", "x"]),
                               children, max_size=6), max_leaves=20)


@FUZZ
@given(data=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3))
def test_pa_hmdb51_parser(sandbox, data):
    d = sandbox / "pa"
    d.mkdir(exist_ok=True)
    (d / "wave.json").write_text(json.dumps(data), encoding="utf-8")
    try:
        table = load_pa_hmdb51(d)
        assert set(np.unique(table.attributes)) <= {0, 1}
    except LabelError:
        pass


config_values = st.none() | st.booleans() | st.integers(-5, 100) | st.floats(allow_nan=True) | st.text(max_size=6) \
    | st.lists(st.integers(0, 4), max_size=3)


@FUZZ
@given(section=st.sampled_from(["data", "model", "train", "evaluate", "runtime", "nope"]),
       key=st.sampled_from(["kind", "keep_ratio", "depth", "phase1_epochs", "keep_ratios", "precision", "x"]),
       value=config_values)
def test_config_loader(section, key, value):
    try:
        from_dict(ExperimentConfig, {section: {key: value}})
    except ConfigError:
        pass


@FUZZ
@given(override=st.text(max_size=40))
def test_config_overrides(override):
    try:
        load_experiment("tiny", [override])
    except ConfigError:
        pass


@pytest.fixture(scope="module")
def small_videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("v")
    frames = np.random.default_rng(0).integers(0, 255, (6, 24, 32, 3), dtype=np.uint8)
    mp4 = write_video(d / "a.mp4", frames, fps=5)
    return [mp4.read_bytes()]


@FUZZ
@given(data=st.data())
def test_video_reader_on_mutated_files(sandbox, small_videos, data):
    blob = bytearray(data.draw(st.sampled_from(small_videos)))
    for _ in range(data.draw(st.integers(1, 20))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    path = sandbox / "fuzz.mp4"
    path.write_bytes(bytes(blob))
    try:
        frames, _ = read_video(path)
        assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8
    except VideoReadError:
        pass
