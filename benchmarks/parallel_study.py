"""Run a recipe study as many independent processes side by side: one per (recipe, seed), on one GPU or many cores.

    python benchmarks/parallel_study.py --out rows.jsonl --parallel 14 --last-start 6 --seeds 0 1 2 \
        --recipe base= --recipe lp1=train.lambda_p=1.0 -- --probe --probe-ratios 0.7 --set runtime.threads=1

Each job is ``recipe_study.py --seeds S --recipe R`` with the arguments after ``--``, so every row is the first
(and only) one of its invocation: rows of different recipes are comparable seed by seed, and none depends on
which jobs ran beside it. Jobs are queued seed-major (every recipe's seed 0 first, then seed 1, ...), so a run
cut short still holds whole seeds. No job starts after ``--last-start`` minutes; jobs still running at
``--deadline`` minutes are stopped and their rows are missing, never partial. Finished rows are appended to
``--out`` as they come, each with its job's wall time; a job that fails leaves the tail of its log in
``--out``'s ``.failed`` file beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = Path(__file__).with_name("recipe_study.py")


def jobs_of(recipes: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    """Seed-major order: every recipe at the first seed before any recipe at the second."""
    return [(recipe, seed) for seed in seeds for recipe in recipes]


def start(recipe: str, seed: int, extra: list[str], folder: Path, index: int) -> dict:
    out, log = folder / f"job{index}.jsonl", folder / f"job{index}.log"
    cmd = [sys.executable, str(STUDY), "--seeds", str(seed), "--recipe", recipe, "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    handle = log.open("w")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return {"proc": proc, "recipe": recipe, "seed": seed, "out": out, "log": log, "handle": handle,
            "started": time.time()}


def finish(job: dict, out: Path) -> bool:
    """Append the job's row to ``out`` (True), or its log's tail to ``out.failed`` (False)."""
    job["handle"].close()
    minutes = (time.time() - job["started"]) / 60
    if job["proc"].returncode == 0 and job["out"].exists():
        with out.open("a") as fh:
            for line in job["out"].read_text().splitlines():
                fh.write(json.dumps({**json.loads(line), "job_minutes": minutes}) + "\n")
        return True
    tail = job["log"].read_text()[-3000:]
    with out.with_suffix(".failed").open("a") as fh:
        fh.write(f"### {job['recipe']} seed {job['seed']} rc {job['proc'].returncode}\n{tail}\n")
    return False


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", action="append", required=True, help="name=override;override;... (recipe_study)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--last-start", type=float, default=float("inf"), help="minutes after which no job starts")
    ap.add_argument("--deadline", type=float, default=float("inf"), help="minutes after which running jobs stop")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    queue, running, t0 = jobs_of(args.recipe, args.seeds), [], time.time()
    done = failed = stopped = 0
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        while queue or running:
            elapsed = (time.time() - t0) / 60
            while queue and len(running) < args.parallel and elapsed < args.last_start:
                recipe, seed = queue.pop(0)
                running.append(start(recipe, seed, extra, Path(tmp), index))
                index += 1
            if elapsed >= min(args.last_start, args.deadline):
                queue.clear()
            for job in [j for j in running if j["proc"].poll() is not None]:
                running.remove(job)
                ok = finish(job, args.out)
                done, failed = done + ok, failed + (not ok)
                print(f"{elapsed:6.1f} min  {'done' if ok else 'FAILED'}  {job['recipe'].split('=')[0]} seed "
                      f"{job['seed']}  ({(time.time() - job['started']) / 60:.1f} min)", flush=True)
            if elapsed >= args.deadline:
                for job in running:
                    os.killpg(job["proc"].pid, 15)
                    job["proc"].wait()
                    job["handle"].close()
                    print(f"{elapsed:6.1f} min  stopped at the deadline: {job['recipe'].split('=')[0]} seed "
                          f"{job['seed']}", flush=True)
                stopped, running = stopped + len(running), []
            time.sleep(1)
    print(f"{done} rows in {args.out}, {failed} failed, {stopped} stopped at the deadline", flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
