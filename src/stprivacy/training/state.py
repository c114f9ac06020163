"""Everything besides weights that a resumed run needs to continue exactly where it stopped."""

from __future__ import annotations

import torch


def rng_state(generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "batches": generator.get_state()}


def restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["batches"])


def trainer_state(epoch: int, optimizers: dict, schedulers: dict, generator: torch.Generator, **extra) -> dict:
    return {
        "epoch": epoch,
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "rng": rng_state(generator),
        **extra,
    }


def restore_trainer(state: dict, optimizers: dict, schedulers: dict, generator: torch.Generator) -> int:
    for k, o in optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    for k, s in schedulers.items():
        s.load_state_dict(state["schedulers"][k])
    restore_rng(state["rng"], generator)
    return int(state["epoch"])
