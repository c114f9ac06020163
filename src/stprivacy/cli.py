"""``stprivacy`` command line: a thin layer over :mod:`stprivacy.pipeline` and the data tools.

    stprivacy benchmark --preset synth-quick --out runs/demo       everything: data, phases 1-3, baselines, report
    stprivacy train --preset P --out RUN [--restart] [--set k=v]   phases 1-2 (resumes an existing RUN)
    stprivacy evaluate --run RUN                                   phase 3 and the keep-ratio sweep
    stprivacy anonymize --run RUN --keep-ratio A IN... -o OUT     anonymize real videos (files or folders)
    stprivacy export-onnx --run RUN --keep-ratio A -o anon.onnx    the inference-mode anonymizer as ONNX
    stprivacy synth --out DIR --train-size N --test-size M         write the synthetic benchmark as mp4 + CSV
    stprivacy data check --preset P [--set data.root=...]          what a dataset root holds and lacks
    stprivacy presets                                              list the experiment presets
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stprivacy.errors import STPrivacyError


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, help="experiment preset name or YAML file (see `stprivacy presets`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted config override, e.g. --set train.phase1_epochs=10 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stprivacy", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="phases 1 and 2: train the anonymizer (resumes an existing run folder)")
    _experiment_args(p)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--restart", action="store_true", help="discard the run folder's checkpoints and start over")

    p = sub.add_parser("evaluate", help="phase 3: fresh recognizers and attackers on anonymized clips, the sweep")
    p.add_argument("--run", required=True, help="run folder written by `train` or `benchmark`")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a phase-3 setting of the run's config, e.g. --set evaluate.seeds=3 (saved)")
    p.add_argument("--keep-ratio", type=float, nargs="+", metavar="A",
                   help="deployment keep ratios to evaluate (shorthand for --set evaluate.keep_ratios=[...])")

    p = sub.add_parser("benchmark", help="train, evaluate and compare with the baselines in one run folder")
    _experiment_args(p)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--restart", action="store_true", help="start over instead of resuming")

    p = sub.add_parser("synth", help="write synthetic clips to disk as H.264 mp4 plus manifest CSVs")
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="quick", help="synthetic preset: quick, paper, hard, tiny")
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", metavar="PNG", help="also save a picture of sample clips with their labels")

    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="verify a dataset root against its labels and splits")
    _experiment_args(c)
    c.add_argument("--decode", action="store_true", help="also open every found video (slow)")

    p = sub.add_parser("anonymize", help="anonymize video files or folders with a trained run's anonymizer")
    p.add_argument("inputs", nargs="+", help="video files and/or folders (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="output .mp4 (one input file) or folder")
    p.add_argument("--run", required=True, help="run folder with a trained anonymizer")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--keep-ratio", type=float, help="deployment keep ratio a (default: the run's training a)")
    group.add_argument("--max-cmap", type=float,
                       help="pick the largest evaluated keep ratio whose worst-case privacy cMAP is at most this")
    p.add_argument("--side-by-side", action="store_true", help="write raw | kept tubelets | anonymized (inspection)")
    p.add_argument("--scale", type=int, default=1, help="integer upscaling of the output frames for viewing")
    p.add_argument("--tile-scale", type=float, default=None,
                   help="tile the whole frame, scaled by this factor, with model-size tiles instead of letterboxing")
    p.add_argument("--stride", type=int, default=None,
                   help="feed the model every STRIDE-th frame, in interleaved clips, so it sees motion at its "
                        "training time scale (default: the run's data.sampling.stride; every frame is still output)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all available)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu or cuda[:i]")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 autocast on a GPU, fp32 on a CPU (bf16 on CPUs without AVX-512 BF16 is slow)")
    p.add_argument("--batch", type=int, default=8,
                   help="windows of frames per forward pass (a GPU wants several; the output is the same)")

    p = sub.add_parser("export-onnx", help="export a run's inference-mode anonymizer to ONNX at one keep ratio")
    p.add_argument("--run", required=True)
    p.add_argument("--keep-ratio", type=float, default=None, help="default: the run's training keep ratio")
    p.add_argument("-o", "--output", required=True, help="the .onnx file")

    sub.add_parser("presets", help="list the experiment presets")
    return parser


def _cmd_train(args) -> None:
    from stprivacy import pipeline
    from stprivacy.config import load_experiment

    run = pipeline.prepare_run(load_experiment(args.preset, args.overrides), args.out, args.restart)
    pipeline.train(run)
    if _is_main():
        print(f"trained anonymizer: {run.checkpoint(pipeline.ANONYMIZER).with_suffix('.safetensors')}")


def _cmd_evaluate(args) -> None:
    from stprivacy import pipeline
    from stprivacy.evaluation.report import markdown_table
    from stprivacy.training.run_dir import RunDir

    run = RunDir(args.run)
    overrides = list(args.overrides)
    if args.keep_ratio:
        overrides.append(f"evaluate.keep_ratios=[{','.join(str(a) for a in args.keep_ratio)}]")
    pipeline.reconfigure(run, overrides)
    report = pipeline.evaluate(run)
    if _is_main():
        print(markdown_table(report))
        print(f"report: {Path(args.run) / 'report.json'}")


def _cmd_benchmark(args) -> None:
    from stprivacy import pipeline
    from stprivacy.config import load_experiment
    from stprivacy.evaluation.report import markdown_table

    report = pipeline.benchmark(load_experiment(args.preset, args.overrides), args.out, args.restart)
    if _is_main():
        print(markdown_table(report))
        print(f"report: {Path(args.out) / 'report.md'}, plot: {Path(args.out) / 'tradeoff.png'}")


def _cmd_synth(args) -> None:
    from stprivacy.data.synthetic import synth_preset
    from stprivacy.data.synthetic.dataset import render_split, write_split

    cfg = synth_preset(args.preset)
    if args.grid:
        from stprivacy.data.synthetic.grid import save_sample_grid

        print(f"sample grid: {save_sample_grid(args.grid, cfg, seed=args.seed)}")
    for split, size in (("train", args.train_size), ("test", args.test_size)):
        csv = write_split(render_split(cfg, size, args.seed, split), Path(args.out), split)
        print(f"{split}: {size} clips, manifest {csv}")


def _cmd_data_check(args) -> None:
    from stprivacy.config import load_experiment
    from stprivacy.data.build import real_entries
    from stprivacy.data.video_io import probe_fps
    from stprivacy.errors import VideoReadError

    cfg = load_experiment(args.preset, args.overrides)
    if cfg.data.kind == "synthetic":
        print("synthetic data is rendered on the fly: nothing to check")
        return
    train, test, classes, attrs, report = real_entries(cfg.data, cfg.seed)
    if args.decode:
        for e in train + test:
            try:
                probe_fps(e.path)
            except VideoReadError:
                report.unreadable.append(str(e.path))
    print(f"{cfg.data.kind}: {len(classes)} classes, attributes {', '.join(attrs)}; "
          f"train {len(train)}, test {len(test)} videos")
    print(report.summary())


def _video_jobs(inputs: list[str], output: str) -> list[tuple[Path, Path]]:
    from stprivacy.data.real import VIDEO_EXTENSIONS
    from stprivacy.errors import VideoReadError

    out = Path(output)
    jobs: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for f in sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()):
                jobs.append((f, out / item.name / f.relative_to(item).with_suffix(".mp4")))
        elif item.is_file():
            single = len(inputs) == 1 and out.suffix.lower() == ".mp4"
            jobs.append((item, out if single else out / item.with_suffix(".mp4").name))
        else:
            raise VideoReadError(f"input not found: {item}")
    if not jobs:
        raise VideoReadError(f"no video found in {', '.join(inputs)}")
    return jobs


def _cmd_anonymize(args) -> None:
    import torch
    from tqdm.auto import tqdm

    from stprivacy.deploy import anonymize_file, pick_keep_ratio, training_stride
    from stprivacy.errors import VideoReadError
    from stprivacy.pipeline import load_anonymizer, warn_unerased
    from stprivacy.runtime import RuntimeConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = RuntimeConfig(device=args.device, precision=args.precision)
    model = load_anonymizer(args.run)
    keep_ratio = (pick_keep_ratio(args.run, args.max_cmap) if args.max_cmap is not None
                  else args.keep_ratio if args.keep_ratio is not None else model.cfg.keep_ratio)
    warn_unerased(model, [keep_ratio], "--keep-ratio")
    stride = args.stride if args.stride is not None else training_stride(args.run)
    jobs = _video_jobs(args.inputs, args.output)
    failed = []
    for src, dst in tqdm(jobs, desc=f"anonymize a={keep_ratio}", unit="video", disable=len(jobs) == 1):
        try:
            n = anonymize_file(model, src, dst, keep_ratio, output_scale=args.scale, side_by_side=args.side_by_side,
                               tile_scale=args.tile_scale, stride=stride, windows_per_batch=args.batch,
                               runtime=runtime)
            print(f"{src} -> {dst} ({n} frames, a={keep_ratio}, frame stride {stride})")
        except VideoReadError as exc:
            failed.append(str(src))
            print(f"stprivacy: skipped unreadable {src}: {exc}", file=sys.stderr)
    if failed:
        raise VideoReadError(f"{len(failed)} of {len(jobs)} videos could not be read")


def _cmd_export_onnx(args) -> None:
    from stprivacy.deploy.onnx_export import export_onnx
    from stprivacy.pipeline import load_anonymizer, warn_unerased

    model = load_anonymizer(args.run)
    a = model.cfg.keep_ratio if args.keep_ratio is None else args.keep_ratio
    warn_unerased(model, [a], "--keep-ratio")
    print(f"exported (a={a}): {export_onnx(model, args.output, a)}")


def _cmd_presets(_args) -> None:
    from stprivacy.config import preset_names, read_yaml

    for name in preset_names():
        print(f"{name:20s} {read_yaml(name).get('name', '')}")


COMMANDS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "benchmark": _cmd_benchmark, "synth": _cmd_synth,
            "anonymize": _cmd_anonymize, "export-onnx": _cmd_export_onnx, "presets": _cmd_presets}


def _is_main() -> bool:
    from stprivacy.training import distributed

    return distributed.current().is_main


def main(argv: list[str] | None = None) -> int:
    """The ``stprivacy`` command. Under ``torchrun`` every process runs it; rank 0 alone logs at INFO and prints."""
    import os

    from stprivacy.training import distributed

    args = build_parser().parse_args(argv)
    quiet = int(os.environ.get("RANK", "0")) > 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "data":
            _cmd_data_check(args)
        else:
            COMMANDS[args.command](args)
    except STPrivacyError as exc:
        print(f"stprivacy: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stprivacy: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
