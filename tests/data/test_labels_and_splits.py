import io
import json

import numpy as np
import pytest

from stprivacy.data.manifest import read_manifest, write_manifest
from stprivacy.data.pa_hmdb51 import load_pa_hmdb51, random_split
from stprivacy.data.splits import read_hmdb51_split, read_ucf101_split
from stprivacy.data.vp_labels import VP_ATTRIBUTES, load_vp_labels, read_label_csv
from stprivacy.errors import LabelError

# METHOD.md section 4: positive rates of VP-HMDB51
PUBLISHED_RATES = {"skin_color": 0.90, "face": 0.62, "gender": 0.92, "nudity": 0.27, "relationship": 0.21}


def test_shipped_vp_tables_reproduce_published_counts_and_rates():
    hmdb, ucf = load_vp_labels("hmdb51"), load_vp_labels("ucf101")
    assert len(hmdb) == 6766 and len(ucf) == 13320
    assert len(set(hmdb.actions)) == 51 and len(set(ucf.actions)) == 101
    rates = hmdb.positive_rates()
    for attr, rate in PUBLISHED_RATES.items():
        assert rates[attr] == pytest.approx(rate, abs=0.015), attr


@pytest.mark.parametrize("dataset", ["hmdb51", "ucf101"])
def test_vp_tables_match_the_upstream_pickles(shared_data, dataset):
    """The shipped CSV equals the authors' pickle, read with the numpy-only unpickler."""
    from stprivacy.data.safe_pickle import load_vp_pickle

    upstream = load_vp_pickle(shared_data / "vp_annotations" / "annotations" /
                              f"{dataset}_privacy_attribute_label.pickle")
    shipped = load_vp_labels(dataset)
    assert upstream.keys == shipped.keys
    assert np.array_equal(upstream.attributes, shipped.attributes)


def test_malicious_label_pickle_executes_nothing(tmp_path):
    import os
    import pickle

    from stprivacy.data.safe_pickle import load_vp_pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "labels.pickle"
    path.write_bytes(pickle.dumps({"a/b.mp4": Evil()}))
    with pytest.raises(LabelError, match="forbidden global"):
        load_vp_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_hmdb51_split_files(shared_data):
    split = read_hmdb51_split(shared_data / "splits" / "hmdb51", 1)
    assert len(split.classes) == 51 and len(split.train) == 3570 and len(split.test) == 1530
    assert "climb" in split.classes and "climb_stairs" in split.classes
    names = {f for _, f in split.train + split.test}
    assert any(n.startswith("#") for n in names)  # '#' names are videos, not comments
    labels = load_vp_labels("hmdb51")
    assert all(f"{c}/{f[:-4]}" in labels for c, f in split.train + split.test)


def test_ucf101_split_files_and_handstand_quirk(shared_data):
    split = read_ucf101_split(shared_data / "splits" / "ucf101", 1)
    assert len(split.classes) == 101 and len(split.train) == 9537 and len(split.test) == 3783
    hs = [f for c, f in split.train if c == "HandstandPushups"]
    assert len(hs) == 100 and all(f.startswith("v_HandStandPushups_") for f in hs)
    labels = load_vp_labels("ucf101")
    assert all(f"{c}/{f[:-4]}" in labels for c, f in split.train + split.test)


def test_split_errors(tmp_path):
    with pytest.raises(LabelError, match="no HMDB51 split-1"):
        read_hmdb51_split(tmp_path, 1)
    (tmp_path / "wave_test_split1.txt").write_text("a.avi 7\n")
    with pytest.raises(LabelError, match="0\\|1\\|2"):
        read_hmdb51_split(tmp_path, 1)
    with pytest.raises(LabelError, match="classInd"):
        read_ucf101_split(tmp_path, 1)
    # an index int() cannot read is a label error, not a crash (found by tests/test_fuzz.py: '¹'.isdigit())
    (tmp_path / "classInd.txt").write_text("\u00b9 ApplyEyeMakeup\n", encoding="utf-8")
    with pytest.raises(LabelError, match="expected '<index> <ClassName>'"):
        read_ucf101_split(tmp_path, 1)


def test_pa_hmdb51_video_level_labels(shared_data):
    table = load_pa_hmdb51(shared_data / "pa_hmdb51" / "PrivacyAttributes")
    assert len(table) == 515 and len(set(table.actions)) == 51
    assert table.attribute_names == VP_ATTRIBUTES
    rates = table.positive_rates()
    assert 0.5 < rates["skin_color"] <= 1.0 and 0.0 < rates["relationship"] < 0.6
    tr, te = random_split(table, seed=0)
    assert len(tr) == 309 and len(te) == 206 and not set(tr) & set(te)
    assert random_split(table, seed=0) == (tr, te) and random_split(table, seed=1) != (tr, te)


def test_pa_hmdb51_rule_on_a_hand_made_file(tmp_path):
    entry = {"skin_color": [[0, 9, 0], [10, 20, [1, 3]]], "face": [[0, 20, 0]], "gender": [[0, 20, 2]],
             "nudity": [[0, 20, 0]], "relationship": [[0, 5, 1], [6, 20, 0]], "review": True}
    (tmp_path / "hug.json").write_text(json.dumps({"x_hug.avi": entry}))
    table = load_pa_hmdb51(tmp_path)
    assert table.row("hug/x_hug").tolist() == [1, 0, 1, 0, 1]
    (tmp_path / "bad.json").write_text(json.dumps({"y.avi": {"face": "oops"}}))
    with pytest.raises(LabelError, match="segment"):
        load_pa_hmdb51(tmp_path)


def test_label_csv_errors():
    with pytest.raises(LabelError, match="lacks columns"):
        read_label_csv(io.StringIO("video,action\n"))
    with pytest.raises(LabelError, match="0 or 1"):
        read_label_csv(io.StringIO("video,action,skin_color,face,gender,nudity,relationship\na/b.mp4,a,1,2,0,0,0\n"))


def test_manifest_round_trip_and_path_escape(tmp_path):
    path = write_manifest(tmp_path / "m.csv", [("v/a.mp4", "wave", [1, 0]), ("v/b.mp4", "clap", [0, 1])],
                          ("face", "gender"))
    m = read_manifest(path)
    assert m.attribute_names == ("face", "gender") and m.classes == ["clap", "wave"]
    assert m.entries[0].path == (tmp_path / "v" / "a.mp4").resolve()
    write_manifest(tmp_path / "evil.csv", [("../../etc/passwd", "wave", [1, 0])], ("face", "gender"))
    with pytest.raises(LabelError, match="escapes"):
        read_manifest(tmp_path / "evil.csv")
    assert read_manifest(tmp_path / "evil.csv", allow_outside_root=True).entries[0].path.name == "passwd"


@pytest.mark.parametrize("text, message", [
    ("", "header"),
    ("path,label\n", "header"),
    ("video,label,face\n", "no video"),
    ("video,label,face\nv.mp4,wave\n", "columns"),
    ("video,label,face\nv.mp4,wave,yes\n", "0 or 1"),
])
def test_manifest_errors(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(LabelError, match=message):
        read_manifest(tmp_path / "m.csv")
