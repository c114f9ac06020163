"""A run folder: resolved config, JSON-lines log, checkpoints, reports.

::

    RUN/
      config.yaml            the resolved experiment config
      log.jsonl              one JSON object per epoch and event
      checkpoints/phase1.*   anonymizer after phase 1 (+ its training state, phase1.state-<n>.pt)
      checkpoints/phase2.*   anonymizer and auxiliary recognizers after phase 2
      eval/*.json            one phase-3 result per method, keep ratio and seed (evaluation resumes from them)
      report.json, report.md, tradeoff.png
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from stprivacy.config import ExperimentConfig, load_experiment, save_experiment
from stprivacy.errors import ConfigError


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def checkpoint(self, name: str) -> Path:
        return self.path / "checkpoints" / name

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def create(self, cfg: ExperimentConfig) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            save_experiment(cfg, self.config_path)
        except OSError as exc:
            raise ConfigError(f"cannot create run folder {self.path}: {exc}") from exc

    def config(self) -> ExperimentConfig:
        if not self.exists():
            raise ConfigError(f"{self.path} is not a run folder (no config.yaml); run `stprivacy train` first")
        return load_experiment(self.config_path)

    def log(self, event: str, **fields) -> None:
        """Append one event to ``log.jsonl`` (rank 0 only under ``torchrun``)."""
        from stprivacy.training import distributed

        if not distributed.current().is_main:
            return
        record = {"time": round(time.time(), 3), "event": event, **fields}
        with (self.path / "log.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict]:
        path = self.path / "log.jsonl"
        if not path.is_file():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the half-written last line of a killed run
        return records
