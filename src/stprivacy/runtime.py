"""Where and how computations run: device, threads, mixed precision, seeding.

torch is imported where it is used, so that reading a config (:mod:`stprivacy.config`) does not load it.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class RuntimeConfig:
    #: "auto" (CUDA when available, else CPU), "cpu" or "cuda[:i]".
    device: str = "auto"
    #: CPU threads for torch; 0 = the cores this process may use.
    threads: int = 0
    #: "auto" (bf16 autocast on GPUs, fp32 on CPUs), "bf16" or "fp32". bf16 on a CPU without AVX-512 BF16
    #: (the AMD EPYC CI machines) ran 15-40x slower than fp32, so the CPU default is fp32.
    precision: str = "auto"
    #: Show progress bars.
    progress: bool = True
    #: Gradient accumulation: each batch is processed as this many micro-batches (per process), with the same
    #: update as the whole batch at once; for batches that do not fit in memory.
    accumulate: int = 1
    #: ``torch.compile`` the models' training forward passes (GPUs; the first steps are slower while it compiles).
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {self.accumulate}")

    def torch_device(self) -> torch.device:
        """The configured device; under ``torchrun`` with several processes, "cuda" means this process's own GPU
        (``cuda:LOCAL_RANK``)."""
        import torch

        if self.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            from stprivacy.errors import ConfigError

            raise ConfigError(f"device {self.device!r} asked for, but this torch sees no CUDA GPU "
                              f"(torch {torch.__version__}); use device cpu or auto")
        if device.type == "cuda" and device.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return device

    def apply_threads(self, processes: int = 1) -> None:
        """``threads``, or this machine's cores shared among ``processes`` (the ranks of a CPU ``torchrun``)."""
        n = self.threads or len(os.sched_getaffinity(0)) // max(1, processes)
        import torch

        torch.set_num_threads(max(1, n))

    def compiled(self, model: torch.nn.Module):
        """The callable to train ``model`` with: ``torch.compile(model)`` when ``compile`` is on, else the model.
        Compiled and plain modules share their parameters, so checkpoints are unaffected."""
        import torch

        return torch.compile(model) if self.compile else model

    def autocast(self, device: torch.device):
        import torch

        if self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda"):
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
