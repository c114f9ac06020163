"""From a :class:`~stprivacy.config.DataConfig` to the train and test :class:`ClipSet` of an experiment."""

from __future__ import annotations

import logging

import numpy as np
import torch

from stprivacy.config import DataConfig
from stprivacy.data.clips import ClipSet
from stprivacy.data.real import DatasetReport, VideoEntry, decode_clipset, split_entries
from stprivacy.errors import ConfigError

log = logging.getLogger(__name__)


def build_datasets(cfg: DataConfig, seed: int, progress: bool = True) -> tuple[ClipSet, ClipSet, DatasetReport]:
    if cfg.kind == "synthetic":
        from stprivacy.data.synthetic import synth_preset
        from stprivacy.data.synthetic.dataset import render_split

        synth = synth_preset(cfg.synth_preset)
        train = render_split(synth, cfg.train_size, seed, "train", cfg.workers, progress)
        test = render_split(synth, cfg.test_size, seed, "test", cfg.workers, progress)
        return train, test, DatasetReport(found=len(train) + len(test))
    train_entries, test_entries, names, attrs, report = real_entries(cfg, seed)
    common = dict(action_names=names, attribute_names=attrs, seed=seed, cache_dir=cfg.cache_dir, progress=progress,
                  report=report, workers=cfg.workers)
    train = decode_clipset(train_entries, cfg.sampling, train=True, **common)
    test = decode_clipset(test_entries, cfg.sampling, train=False, **common)
    return train, test, report


def split_validation(cfg: DataConfig, seed: int, train: ClipSet, progress: bool = True
                     ) -> tuple[ClipSet, ClipSet | None]:
    """The training clips and the validation split (None when it is configured empty).

    Synthetic data renders its own ``val`` stream, so training keeps every clip; real data holds a seeded
    ``val_fraction`` of the training videos out of training. The test split is never touched here.
    """
    if cfg.kind == "synthetic":
        if cfg.val_size == 0:
            return train, None
        from stprivacy.data.synthetic import synth_preset
        from stprivacy.data.synthetic.dataset import render_split

        return train, render_split(synth_preset(cfg.synth_preset), cfg.val_size, seed, "val", cfg.workers, progress)
    n_val = int(round(len(train) * cfg.val_fraction))
    if n_val == 0:
        return train, None
    if n_val >= len(train):
        raise ConfigError(f"data.val_fraction {cfg.val_fraction} leaves no training video of {len(train)}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 7919))
    return train.subset(order[n_val:].sort().values), train.subset(order[:n_val].sort().values)


def real_entries(cfg: DataConfig, seed: int):
    from stprivacy.data.splits import read_hmdb51_split, read_ucf101_split
    from stprivacy.data.vp_labels import VP_ATTRIBUTES, load_vp_labels

    if cfg.root is None:
        raise ConfigError(f"data.root (the folder of the {cfg.kind} videos) is required")
    if cfg.kind in ("hmdb51", "ucf101"):
        if cfg.split_dir is None:
            raise ConfigError("data.split_dir (the official split files) is required")
        reader = read_hmdb51_split if cfg.kind == "hmdb51" else read_ucf101_split
        split = reader(cfg.split_dir, cfg.split)
        train, test, report = split_entries(cfg.root, split, load_vp_labels(cfg.kind))
        return train, test, tuple(split.classes), VP_ATTRIBUTES, report
    if cfg.kind == "pa_hmdb51":
        from stprivacy.data.pa_hmdb51 import load_pa_hmdb51, random_split
        from stprivacy.data.real import match_split

        if cfg.labels is None:
            raise ConfigError("data.labels (the folder of PA-HMDB51's <action>.json files) is required")
        table = load_pa_hmdb51(cfg.labels)
        classes = sorted(set(table.actions))
        videos = [(k.split("/", 1)[0], k.split("/", 1)[1] + ".avi") for k in table.keys]
        tr, te = random_split(table, seed)
        report = DatasetReport()
        train = match_split(cfg.root, [videos[i] for i in tr], classes, table, report)
        test = match_split(cfg.root, [videos[i] for i in te], classes, table, report)
        return train, test, tuple(classes), VP_ATTRIBUTES, report
    if cfg.kind == "manifest":
        from stprivacy.data.manifest import read_manifest

        if cfg.labels is None or cfg.test_labels is None:
            raise ConfigError("data.labels and data.test_labels (train and test manifest CSVs) are required")
        tr = read_manifest(cfg.labels, cfg.root, cfg.allow_outside_root)
        te = read_manifest(cfg.test_labels, cfg.root, cfg.allow_outside_root)
        if tr.attribute_names != te.attribute_names:
            raise ConfigError("train and test manifests have different attribute columns")
        classes = sorted(set(tr.classes) | set(te.classes))
        index = {c: i for i, c in enumerate(classes)}
        report = DatasetReport()

        def entries(man):
            out = []
            for e in man.entries:
                if not e.path.is_file():
                    report.missing.append(str(e.path))
                    continue
                out.append(VideoEntry(e.path, index[e.label], np.array(e.attributes, dtype=np.int64), str(e.path)))
            report.found += len(out)
            return out

        return entries(tr), entries(te), tuple(classes), tr.attribute_names, report
    raise ConfigError(f"unknown data.kind {cfg.kind!r}")
