"""Data-parallel training over processes started by ``torchrun`` (gloo on CPUs, NCCL on GPUs).

How a global batch is shared, and why the result equals one process's:

* every rank draws the same global batch (the batch order, views and flips come from a generator seeded alike on
  every rank) and keeps its slice of it, cut further into ``accumulate`` micro-batches;
* each micro-batch's mean loss is weighted by ``its size / global batch size`` before ``backward``, and the
  gradients are **summed** over ranks: the update is the gradient of the global batch's mean loss, whatever the
  number of ranks or micro-batches (up to float summation order), even for a short last batch;
* logged losses are reduced the same way, so every rank sees the same numbers, and the instability guard takes the
  same decision on every rank.

Gradients are synchronised explicitly (one flattened all-reduce per bucket of parameters) rather than through
``DistributedDataParallel``'s hooks: phase 2 and the learned baselines alternate two optimizers, freeze one side in
each step, and call sub-modules outside their wrapper's ``forward``, which DDP's reducer cannot follow without
``find_unused_parameters`` and its caveats. Model-internal randomness (Gumbel noise, frame picks) uses per-rank
seeds; only rank 0 writes logs, checkpoints and reports.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from stprivacy.data.clips import to_float

#: Parameters per all-reduce (elements), so a large model does not need a second copy of all its gradients.
BUCKET_NUMEL = 2**24


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its rank among ``world`` processes (``world == 1``: no distribution)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()
_current = SINGLE


def current() -> Dist:
    """The process group this process joined with :func:`init_from_env` (or a single process)."""
    return _current


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> Dist:
    """Join the process group ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); a single process when ``WORLD_SIZE`` is unset or 1."""
    global _current
    if not launched_by_torchrun():
        _current = SINGLE
        return _current
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    _current = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return _current


def use(group: Dist) -> None:
    """Make ``group`` the current one (for processes that called ``init_process_group`` themselves)."""
    global _current
    _current = group


def shutdown() -> None:
    global _current
    if dist.is_initialized():
        # every rank leaves together: a rank that tears gloo down while another still talks to it can abort
        # ("terminate called without an active exception"; seen 1 run in 3 on a 2-core machine)
        dist.barrier()
        dist.destroy_process_group()
    _current = SINGLE


def barrier(group: Dist | None = None) -> None:
    if (group or _current).enabled:
        dist.barrier()


def decorrelate_rng(group: Dist | None = None) -> None:
    """Give every rank but 0 its own stream of model-internal randomness (Gumbel noise, frame picks), derived from
    the state all ranks share, so a run stays reproducible. Batch order uses its own generator and stays shared."""
    group = group or _current
    if group.enabled and group.rank:
        torch.manual_seed(int(torch.randint(0, 2**62, (1,))) + group.rank)


# ------------------------------------------------------------------------------------------------ splitting
def micro_batches(batch: dict[str, torch.Tensor], group: Dist, accumulate: int = 1
                  ) -> list[tuple[dict[str, torch.Tensor], float]]:
    """This rank's share of a global batch, as ``accumulate`` micro-batches, each with its loss weight
    ``micro-batch size / global batch size``. A rank may get nothing from a short last batch (an empty list)."""
    n = len(next(iter(batch.values())))
    share = shard(n, group)
    parts = []
    for chunk in torch.arange(share.start, share.stop).tensor_split(max(1, accumulate)):
        if len(chunk):
            parts.append(({k: v[chunk] for k, v in batch.items()}, len(chunk) / n))
    return parts


# ------------------------------------------------------------------------------------------------- reducing
def _params(modules: Iterable[nn.Module]) -> list[nn.Parameter]:
    seen, out = set(), []
    for m in modules:
        for p in m.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def sync_gradients(modules: Iterable[nn.Module], group: Dist | None = None) -> None:
    """Sum the gradients of every trainable parameter over ranks (a parameter without a gradient on some rank
    counts as zero there, so every rank flattens the same list)."""
    group = group or _current
    if not group.enabled:
        return
    params = _params(modules)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    start = 0
    while start < len(params):
        bucket, size = [], 0
        while start < len(params) and (not bucket or size + params[start].numel() <= BUCKET_NUMEL):
            bucket.append(params[start])
            size += params[start].numel()
            start += 1
        flat = torch.cat([p.grad.reshape(-1) for p in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in bucket:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()


def reduce_sums(values: dict[str, float], group: Dist | None = None) -> dict[str, float]:
    """Sum each value over ranks (the same keys on every rank)."""
    group = group or _current
    if not group.enabled or not values:
        return values
    keys = sorted(values)
    # NCCL reduces GPU tensors only
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist(), strict=True))


def broadcast_module(module: nn.Module, group: Dist | None = None) -> None:
    """Rank 0's parameters and buffers everywhere (after building or loading a model, and after an epoch for the
    BatchNorm statistics, which each rank estimates on its own slice)."""
    group = group or _current
    if not group.enabled:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def gather_rows(rows: torch.Tensor, group: Dist | None = None) -> torch.Tensor:
    """Concatenate every rank's rows in rank order (rank ``r`` holds the ``r``-th contiguous share)."""
    group = group or _current
    if not group.enabled:
        return rows
    parts: list = [None] * group.world
    dist.all_gather_object(parts, rows.cpu())
    return torch.cat(parts)


def shard(n: int, group: Dist | None = None) -> range:
    """The contiguous share of ``range(n)`` this rank works on (evaluation)."""
    group = group or _current
    bounds = torch.linspace(0, n, group.world + 1).round().long().tolist()
    return range(bounds[group.rank], bounds[group.rank + 1])


# ---------------------------------------------------------------------------------------------- one update
def usable(batch: dict[str, torch.Tensor], group: Dist | None = None) -> bool:
    """A global batch smaller than the number of ranks (a short last batch) would leave a rank without data; it
    is skipped, identically on every rank."""
    return len(next(iter(batch.values()))) >= (group or _current).world


def backward_parts(batch: dict[str, torch.Tensor], loss_fn, device: torch.device, accumulate: int = 1,
                   group: Dist | None = None) -> tuple[dict[str, float], list]:
    """Backward of the global batch's mean loss, from this rank's micro-batches.

    ``loss_fn(micro_batch)`` returns ``(losses, extra)`` with ``losses["total"]`` the micro-batch's mean loss.
    Returns the losses of the global batch, reduced over ranks, and ``(micro_batch, weight, extra)`` for each of
    this rank's micro-batches. Gradients are accumulated, not yet synchronised (:func:`sync_gradients`) nor applied.
    """
    group = group or _current
    parts = [({k: _on(device, k, v) for k, v in part.items()}, weight)
             for part, weight in micro_batches(batch, group, accumulate)]
    sums: dict[str, torch.Tensor] = {}
    done = []
    for part, weight in parts:
        losses, extra = loss_fn(part)
        _accumulate(losses, weight, sums)
        done.append((part, weight, extra))
    return reduce_sums(_to_floats(sums), group), done


def apply_update(optimizer: torch.optim.Optimizer, modules: list[nn.Module], losses: dict[str, float],
                 limits: dict[str, float] | None = None) -> None:
    """The end of every training step: check the reduced losses (the same on every rank, so every rank takes the
    same rollback decision), sum the gradients over ranks, step the optimizer."""
    from stprivacy.training.guard import check_losses

    check_losses(losses, limits)
    sync_gradients(modules)
    optimizer.step()


def _on(device: torch.device, key: str, tensor: torch.Tensor) -> torch.Tensor:
    """Copy to ``device``; a uint8 video or twin (GPU batches travel as uint8) becomes float in [0, 1] there."""
    tensor = tensor.to(device, non_blocking=True)
    return to_float(tensor) if key in ("video", "twin") else tensor


def backward_again(parts: list, loss_fn, group: Dist | None = None) -> dict[str, float]:
    """The second step of an alternating update, over the micro-batches of :func:`backward_parts`:
    ``loss_fn(micro_batch, extra)`` (the recognizers learn from the outputs of the same step). Returns the
    losses reduced over ranks; gradients are accumulated, not synchronised."""
    sums: dict[str, torch.Tensor] = {}
    for part, weight, extra in parts:
        _accumulate(loss_fn(part, extra), weight, sums)
    return reduce_sums(_to_floats(sums), group or _current)


def _accumulate(losses: dict[str, torch.Tensor], weight: float, sums: dict[str, torch.Tensor],
                inputs: list[torch.Tensor] | None = None, retain_graph: bool = False) -> None:
    (losses["total"] * weight).backward(inputs=inputs, retain_graph=retain_graph)
    for k, v in losses.items():
        v = v.detach().float() * weight
        sums[k] = sums[k] + v if k in sums else v


def _to_floats(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """One device-to-host copy for all of a step's losses (a GPU waits once per step, not once per loss)."""
    if not sums:
        return {}
    return dict(zip(sums, torch.stack(list(sums.values())).tolist(), strict=True))
