"""Where and how computations run: device, threads, mixed precision, seeding."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
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

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {self.precision!r}")

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def apply_threads(self) -> None:
        n = self.threads or len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, n))

    def autocast(self, device: torch.device):
        if self.precision == "bf16" or (self.precision == "auto" and device.type == "cuda"):
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
