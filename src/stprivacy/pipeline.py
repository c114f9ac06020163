"""The three commands as a Python API: :func:`train` (phases 1-2), :func:`evaluate` (phase 3 and the trade-off
sweep), :func:`benchmark` (both, baselines included). The CLI is a thin layer over these."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from stprivacy.config import ExperimentConfig, apply_overrides, from_dict, to_dict
from stprivacy.data.build import build_datasets, split_validation
from stprivacy.data.clips import ClipSet
from stprivacy.data.disk import DiskVideos
from stprivacy.data.pool import with_fixed_views
from stprivacy.errors import CheckpointError, ConfigError
from stprivacy.evaluation.instruments import actor_coverage, keep_pattern_leak
from stprivacy.evaluation.leakage import published_fine_pattern
from stprivacy.evaluation.metrics import chance_cmap
from stprivacy.evaluation.phase3 import (
    SPARSIFY_ONLY,
    MethodResult,
    anonymize_clips,
    evaluate_clips,
    missing_attackers,
    sparsify_clips,
)
from stprivacy.evaluation.report import build_report, result_from_json, result_to_json, write_report
from stprivacy.models import STPrivacy
from stprivacy.models.pretrained import with_pretrained
from stprivacy.runtime import seed_everything
from stprivacy.training import distributed
from stprivacy.training.checkpoint import checkpoint_exists, load_modules, read_metadata, save_checkpoint
from stprivacy.training.erasure import erasure_readings, fit_run_erasers, product_readings
from stprivacy.training.phase1 import report_readings, train_phase1
from stprivacy.training.phase2 import train_phase2
from stprivacy.training.run_dir import RunDir

log = logging.getLogger(__name__)

#: The deployable anonymizer of a run (weights only), written when phase 2 ends.
ANONYMIZER = "anonymizer"


def _check_model_fits_data(cfg: ExperimentConfig, clips: ClipSet) -> None:
    t, h, w = clips.clip_shape
    for section in ("model", "recognizer"):
        m = getattr(cfg, section)
        if (m.num_frames, m.img_size, m.img_size) != (t, h, w):
            raise ConfigError(f"{section} expects {m.num_frames}x{m.img_size}x{m.img_size} clips but the data gives "
                              f"{t}x{h}x{w}; set {section}.num_frames / {section}.img_size or the data's sampling")


def start_processes(cfg: ExperimentConfig) -> distributed.Dist:
    """Join the ``torchrun`` process group if there is one (a no-op for a single process) and share the CPU
    threads among the processes of this machine."""
    group = distributed.init_from_env(cfg.runtime.torch_device())
    cfg.runtime.apply_threads(group.world)
    if not group.is_main:
        cfg.runtime.progress = False  # one set of progress bars, rank 0's
    return group


def prepare_run(cfg: ExperimentConfig, out: str | Path, restart: bool = False) -> RunDir:
    """Create a run folder, or reopen an existing one to resume it (its saved config wins over ``cfg``)."""
    group = start_processes(cfg)
    run = RunDir(out)
    if group.is_main:
        _prepare_on_main(run, cfg, restart)
    distributed.barrier()
    return run


#: Settings that say where data is and how the machine runs, not what is trained: a resumed run may change them.
SAFE_TO_CHANGE = ("data.root", "data.split_dir", "data.labels", "data.test_labels", "data.cache_dir",
                  "data.workers", "runtime.")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: ExperimentConfig, wanted: ExperimentConfig) -> list[str]:
    """The dotted keys whose values differ between two configs."""
    a, b = _flatten(to_dict(saved)), _flatten(to_dict(wanted))
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _has_checkpoint(run: RunDir) -> bool:
    folder = run.path / "checkpoints"
    return folder.is_dir() and any(folder.iterdir())


def _prepare_on_main(run: RunDir, cfg: ExperimentConfig, restart: bool) -> None:
    if run.exists() and restart:
        shutil.rmtree(run.path / "checkpoints", ignore_errors=True)
        shutil.rmtree(run.eval_dir, ignore_errors=True)
        for name in ("log.jsonl", "report.json", "report.md", "tradeoff.png"):
            (run.path / name).unlink(missing_ok=True)
    if run.exists() and not restart:
        changed = config_differences(run.config(), cfg)
        if changed and not _has_checkpoint(run):
            # a first try that failed before anything was trained: the corrected command simply starts it
            log.info("run %s has no checkpoint yet: starting it with the new settings (%s)", run.path,
                     ", ".join(changed))
            run.create(cfg)
            run.log("start", name=cfg.name, replaced=changed)
            return
        unsafe = [k for k in changed if not k.startswith(SAFE_TO_CHANGE)]
        if unsafe:
            raise ConfigError(
                f"{run.path} was started with other settings for {', '.join(unsafe)}; resuming would mix two "
                f"experiments. Use the saved settings, --restart, or another --out (safe to change on resume: "
                f"{', '.join(SAFE_TO_CHANGE)}*)")
        if changed:
            run.create(cfg)  # only paths and machine settings differ
        log.info("resuming run %s", run.path)
        run.log("resume", changed=changed)
    else:
        run.create(cfg)
        run.log("start", name=cfg.name)


def reconfigure(run: RunDir, overrides: list[str]) -> ExperimentConfig:
    """Apply dotted overrides to a run's saved config (``stprivacy evaluate --set``), save and return it.

    Phase 3 settings, data paths and machine settings may change; what the anonymizer was trained with may not
    (the saved anonymizer would no longer match its config)."""
    cfg = run.config()
    if not overrides:
        return cfg
    new = from_dict(ExperimentConfig, apply_overrides(to_dict(cfg), overrides))
    trained = [k for k in config_differences(cfg, new)
               if not k.startswith(("evaluate.", "baselines.", *SAFE_TO_CHANGE))]
    if trained:
        raise ConfigError(f"--set {', '.join(trained)}: these settings trained the anonymizer of {run.path}; "
                          "evaluate may change evaluate.*, baselines.*, data paths and runtime.*")
    run.create(new)
    return new


def load_data(data_cfg, seed: int, progress: bool):
    """:func:`build_datasets`, rank 0 first when there is a decoded-clip cache, so the other ranks read it."""
    group = distributed.current()
    if group.enabled and data_cfg.cache_dir and not group.is_main:
        distributed.barrier()
    built = build_datasets(data_cfg, seed, progress and group.is_main)
    if group.enabled and data_cfg.cache_dir and group.is_main:
        distributed.barrier()
    return built


def log_data_report(run: RunDir, report) -> None:
    """Unreadable, missing and unlabelled videos are skipped, counted and listed in the run log."""
    run.log("data", found=report.found, missing=report.missing, unlabelled=report.unlabelled,
            unreadable=report.unreadable)
    if report.missing or report.unlabelled or report.unreadable:
        log.warning("data: %s", report.summary())


def initialisation(cfg: ExperimentConfig) -> dict:
    """Where each trained ViT starts (a weights file or "scratch") and a warning for every network that the
    reproduced setting starts from ImageNet weights but this run does not."""
    starts, warnings = {}, []
    for section, role, who in (("model", "anonymizer", "the anonymizer starts"),
                               ("recognizer", "recognizers", "the ViT recognizers start")):
        m = getattr(cfg, section)
        starts[role] = m.pretrained or "scratch"
        if m.pretrained_expected and not m.pretrained:
            warnings.append(f"{section}.pretrained is not set: {who} from random weights, where the "
                            "paper starts from ImageNet ViT-S (a local DeiT-S or timm ViT-S/16 file); expect lower "
                            "numbers than the paper's")
    return {"start": starts, "warnings": warnings}


def warn_initialisation(run: RunDir, cfg: ExperimentConfig) -> None:
    for warning in initialisation(cfg)["warnings"]:
        log.warning(warning)
        run.log("warning", message=warning)


def phase2_clips(train: ClipSet, cfg: ExperimentConfig) -> ClipSet:
    """Phase 2's training clips: with their counterfactual twins when ``train.twin_invariance`` asks for them
    (rendered here, once; synthetic data only, which the config checks)."""
    if not cfg.train.twin_invariance or train.twins is not None:
        return train
    from stprivacy.data.synthetic import synth_preset
    from stprivacy.data.synthetic.dataset import with_twins

    return with_twins(train, synth_preset(cfg.data.synth_preset), cfg.seed, "train", cfg.data.workers,
                      cfg.runtime.progress)


def train(run: RunDir, data: tuple[ClipSet, ClipSet] | None = None, val: ClipSet | None = None) -> STPrivacy:
    """Phases 1 and 2 in ``run``; resumes from the last checkpoint. Returns the trained anonymizer.

    ``data`` = (train, test) clips already loaded (the test clips are not read here); ``val``: the validation
    split the per-epoch instruments read (built from the config when ``data`` is not given)."""
    cfg = run.config()
    start_processes(cfg)
    seed_everything(cfg.seed)  # the same initial weights on every rank (rank 0's are broadcast anyway)
    if checkpoint_exists(run.checkpoint(ANONYMIZER)):  # already trained: nothing to decode or render
        log.info("%s is trained already", run.path)
        return load_anonymizer(run.path)
    if data is not None:
        train_clips = data[0]
    else:
        train_clips, _, report = load_data(cfg.data, cfg.seed, cfg.runtime.progress)
        log_data_report(run, report)
        train_clips, val = split_validation(cfg.data, cfg.seed, train_clips, cfg.runtime.progress)
    _check_model_fits_data(cfg, train_clips)
    warn_initialisation(run, cfg)
    model = with_pretrained(STPrivacy(cfg.model, num_classes=len(train_clips.action_names)))
    if cfg.model.pretrained:
        run.log("pretrained", model="anonymizer", **vars(model.pretrained_report))
    final = run.checkpoint(ANONYMIZER)
    if not checkpoint_exists(run.checkpoint("phase2")):
        train_phase1(model, train_clips, cfg, run, val)
    model, _ = train_phase2(model, phase2_clips(train_clips, cfg), cfg, run, val)
    if cfg.train.linear_erasure:  # deterministic: every rank fits the same erasers
        coefficients = {}
        ratios = fit_run_erasers(model, train_clips, cfg, coefficients)
        readings = {}
        if val is not None:  # the instruments: out-of-fold probes of val, and a reader fitted on the training clips
            readings = {**erasure_readings(model, val, cfg.runtime),
                        **product_readings(model, train_clips, val, cfg.runtime, coefficients)}
        run.log("linear_erasure", keep_ratios=ratios, clips=len(train_clips) * train_clips.views, **readings)
        report_readings(readings, "linear erasure")
    if distributed.current().is_main:
        save_checkpoint(final, {"anonymizer": model},
                        metadata={"phase": 2, "num_classes": len(train_clips.action_names),
                                  "model": json.loads(json.dumps(cfg.model.__dict__))})
    distributed.barrier()
    run.log("trained")
    return model


def warn_unerased(model: STPrivacy, keep_ratios, what: str) -> list[float]:
    """When ``model`` has linear erasers, warn about the ``keep_ratios`` (named ``what``) that none of them
    serves: those are published without one. Returns them."""
    unerased = [a for a in keep_ratios if not model.erases_at(a)] if len(model.erasers) else []
    if unerased:
        log.warning("%s %s: published without a linear eraser (this anonymizer's erasers serve a in %s; "
                    "train.erasure_keep_ratios chooses them)", what, unerased, model.eraser_ratios())
    return unerased


def load_anonymizer(run_dir: str | Path) -> STPrivacy:
    """The trained anonymizer of a run folder, in eval mode."""
    run = RunDir(run_dir)
    cfg = run.config()
    stem = run.checkpoint(ANONYMIZER)
    if not checkpoint_exists(stem):
        raise CheckpointError(f"{run.path} has no trained anonymizer (checkpoints/{ANONYMIZER}.safetensors); "
                              "run `stprivacy train` on it first")
    meta = read_metadata(stem)
    model = STPrivacy(cfg.model, num_classes=int(meta["num_classes"]))
    load_modules(stem, {"anonymizer": model})
    return model.eval()


def _result_path(run: RunDir, name: str, keep_ratio: float | None, seed: int) -> Path:
    tag = name if keep_ratio is None else f"{name}_a{keep_ratio:g}"
    return run.eval_dir / f"{tag}_seed{seed}.json"


def evaluate(run: RunDir, data: tuple[ClipSet, ClipSet] | None = None) -> dict:
    """Phase 3 for every baseline and every deployment keep ratio, over the configured seeds; writes the reports.

    Each (method, keep ratio, seed) result is saved as soon as it exists, so an interrupted evaluation resumes.
    """
    cfg = run.config()
    group = start_processes(cfg)
    if cfg.evaluate.data is not None:  # unseen actions: evaluate on another dataset
        train_clips, test_clips, _ = load_data(cfg.evaluate.data, cfg.seed, cfg.runtime.progress)
    elif data is not None:
        train_clips, test_clips = data
    else:
        train_clips, test_clips, _ = load_data(cfg.data, cfg.seed, cfg.runtime.progress)
    _check_model_fits_data(cfg, train_clips)
    # phase 3 trains its fresh recognizers on a fixed set of transformed clips: fresh training clips (a frame
    # pool) are drawn train_views times and written out once; learned baselines still train on fresh clips
    # (written only when some method still needs its clips: a resumed evaluation with every result saved does not)
    fresh_train = train_clips
    fixed: list[ClipSet] = []

    def phase3_train() -> ClipSet:
        if not fixed:
            fixed.append(with_fixed_views(fresh_train, (cfg.evaluate.data or cfg.data).sampling.train_views))
        return fixed[0]
    model = load_anonymizer(run.path)
    warn_unerased(model, cfg.evaluate.keep_ratios, "evaluate.keep_ratios")
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    results: list[MethodResult] = []

    seeds = [cfg.seed + s for s in range(cfg.evaluate.seeds)]

    def evaluate_method(name, ratio, make_clips):
        """Every seed of one method; its clips are transformed once (the transform does not depend on the seed)
        and only when some seed's result is not saved yet, or lacks a configured attacker."""
        clips, readings, seed_free = None, None, {}
        for seed in seeds:
            path = _result_path(run, name, ratio, seed)
            saved = result_from_json(json.loads(path.read_text())) if path.is_file() else None
            if saved is not None and not missing_attackers(saved, cfg):
                saved.attackers = {k: saved.attackers[k] for k in cfg.evaluate.attackers}
                results.append(saved)
                continue
            clips = clips or make_clips()
            r = evaluate_clips(name, ratio, *clips, cfg, seed, saved, seed_free)
            if saved is None:  # a saved result keeps the readings it was saved with
                readings = readings or published_readings(clips[1], ratio)
                r.coverage, r.fine_pattern, r.keep_pattern = readings
            if group.is_main:
                path.write_text(json.dumps(result_to_json(r), indent=1))
            run.log("evaluated", method=name, keep_ratio=ratio, seed=seed, action_top1=r.action_top1,
                    privacy_cmap=r.worst[1].cmap, worst_attacker=r.worst[0])
            results.append(r)

    def published_readings(published: ClipSet, ratio: float | None) -> tuple:
        """Coverage, fine-pattern share and keep-pattern leak of a method's published test clips: they do not
        depend on the phase-3 seed, so they are measured once per method."""
        fine_pattern = published_fine_pattern(published.videos)
        keep_pattern = coverage = None
        if published.keep_masks is not None:
            keep_pattern = keep_pattern_leak(published.keep_masks[:, 0], published.attributes)
        if ratio is not None and test_clips.actor_masks is not None:
            coverage = actor_coverage(model, test_clips, ratio, cfg.runtime).coverage
        return coverage, fine_pattern, keep_pattern

    for name in cfg.evaluate.baselines:
        evaluate_method(name, None, lambda n=name: baseline_clips(run, n, phase3_train(), test_clips, data,
                                                                  fit_on=fresh_train))
    def views(name: str, ratio: float, transform) -> tuple[ClipSet, ClipSet]:
        """The method's transform of both splits, into named files under eval/views when they are kept."""
        def out(split: str, clips: ClipSet):
            if not cfg.evaluate.keep_views:
                return None
            path = run.eval_dir / "views" / f"{name}_a{ratio:g}-{split}.u8"
            return DiskVideos.create(tuple(clips.videos.shape), path)
        train_views = phase3_train()
        return (transform(model, train_views, ratio, cfg.runtime, out=out("train", train_views)),
                transform(model, test_clips, ratio, cfg.runtime, out=out("test", test_clips)))

    for a in cfg.evaluate.keep_ratios:
        evaluate_method("stprivacy", a, lambda a=a: views("stprivacy", a, anonymize_clips))
    for a in cfg.evaluate.sparsify_only:
        evaluate_method(SPARSIFY_ONLY, a, lambda a=a: views(SPARSIFY_ONLY, a, sparsify_clips))
    data_cfg = cfg.evaluate.data or cfg.data
    dataset = data_cfg.kind + (f":{data_cfg.synth_preset}" if data_cfg.kind == "synthetic" else "")
    if cfg.evaluate.data is not None:
        dataset = f"{cfg.data.kind} -> {dataset}"
    report = build_report(dataset, test_clips.attribute_names, chance_cmap(test_clips.attributes.numpy()), results,
                          initialisation=initialisation(cfg))
    if group.is_main:
        write_report(report, run.path)
    distributed.barrier()
    run.log("report", methods=len(report["methods"]))
    return report


def baseline_clips(run: RunDir, name: str, train_clips: ClipSet, test_clips: ClipSet,
                   data: tuple[ClipSet, ClipSet] | None = None, fit_on: ClipSet | None = None
                   ) -> tuple[ClipSet, ClipSet]:
    """The evaluation clips seen through baseline ``name``; a learned baseline is trained first (or resumed, or
    loaded) on the run's training data, like the anonymizer."""
    from stprivacy.evaluation.phase3 import apply_learned_baseline
    from stprivacy.models.baselines import LEARNED_BASELINES, apply_baseline
    from stprivacy.training.baselines import train_learned_baseline

    if name not in LEARNED_BASELINES:
        return apply_baseline(name, train_clips), apply_baseline(name, test_clips)
    cfg = run.config()
    fit_on = train_clips if fit_on is None else fit_on
    if cfg.evaluate.data is not None:  # unseen actions: trained where the anonymizer was
        fit_on = data[0] if data is not None else load_data(cfg.data, cfg.seed, cfg.runtime.progress)[0]
    seed_everything(cfg.seed)
    transform = train_learned_baseline(name, fit_on, cfg, run)
    run.log("baseline_trained", method=name)
    return (apply_learned_baseline(transform, train_clips, cfg.runtime, name),
            apply_learned_baseline(transform, test_clips, cfg.runtime, name))


def benchmark(cfg: ExperimentConfig, out: str | Path, restart: bool = False) -> dict:
    """Everything in one run folder: data, phases 1-2, phase 3 for STPrivacy and the baselines, reports."""
    run = prepare_run(cfg, out, restart)
    cfg = run.config()
    train_clips, test_clips, report = load_data(cfg.data, cfg.seed, cfg.runtime.progress)
    log_data_report(run, report)
    train_clips, val_clips = split_validation(cfg.data, cfg.seed, train_clips, cfg.runtime.progress)
    train(run, (train_clips, test_clips), val_clips)
    return evaluate(run, (train_clips, test_clips))
