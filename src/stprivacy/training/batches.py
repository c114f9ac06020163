"""Mini-batches from a :class:`ClipSet` (in memory, on disk or cut afresh from a frame pool), without DataLoader
overhead.

Clips are decoded once, by parallel workers and through the decoded-clip cache (:mod:`stprivacy.data.real`), so a
batch is an index into uint8 videos (a read from disk for real data) plus a conversion to float: on a GPU machine
it is assembled ahead in a background thread, in pinned memory (:func:`training_batches`);
``benchmarks/loader_speed.py`` measures both parts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager

import torch
from tqdm.auto import tqdm

from stprivacy.data.clips import ClipSet, to_float
from stprivacy.training import distributed


def iterate_batches(clips: ClipSet, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                    random_view: bool = True, drop_last: bool = False, hflip: bool = False,
                    as_uint8: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield dicts with ``video`` (B x 3 x T x H x W float in [0, 1]), ``action``, ``attributes`` and, when
    present, ``keep_mask`` and ``twin`` (the clips' counterfactual twins, :attr:`ClipSet.twins`). Training picks
    one random view per video; evaluation takes :func:`all_views`. With ``as_uint8`` the videos stay uint8 (a
    quarter of the bytes to copy to a GPU, converted there). With ``hflip`` each clip is mirrored left-right with
    probability 1/2 (its keep mask and twin too)."""
    n = len(clips)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        views = (torch.randint(clips.views, (len(idx),), generator=generator) if random_view and clips.views > 1
                 else torch.zeros(len(idx), dtype=torch.long))
        batch = {
            "video": clips.videos[idx, views] if as_uint8 else to_float(clips.videos[idx, views]),
            "action": clips.actions[idx],
            "attributes": clips.attributes[idx],
        }
        if clips.keep_masks is not None:
            batch["keep_mask"] = clips.keep_masks[idx, views].float()
        if clips.twins is not None:
            batch["twin"] = clips.twins[idx] if as_uint8 else to_float(clips.twins[idx])
        if hflip:
            flip = torch.rand(len(idx), generator=generator) < 0.5
            batch["video"][flip] = batch["video"][flip].flip(-1)
            if "twin" in batch:
                batch["twin"][flip] = batch["twin"][flip].flip(-1)
            if "keep_mask" in batch:
                b, l, n = batch["keep_mask"].shape
                side = int(round(n**0.5))
                grid = batch["keep_mask"].reshape(b, l, side, n // side)
                grid[flip] = grid[flip].flip(-1)
                batch["keep_mask"] = grid.reshape(b, l, n)
        yield batch


def all_views(clips: ClipSet, batch_size: int, videos: range | None = None
              ) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield (video indices, batch of every view of those videos flattened to B*V clips), over ``videos`` (a range
    of video indices, default all)."""
    v = clips.views
    per = max(1, batch_size // v)
    videos = videos if videos is not None else range(len(clips))
    for start in range(videos.start, videos.stop, per):
        idx = torch.arange(start, min(start + per, videos.stop))
        batch = {"video": to_float(clips.videos[idx].flatten(0, 1))}
        if clips.keep_masks is not None:
            batch["keep_mask"] = clips.keep_masks[idx].flatten(0, 1).float()
        yield idx, batch


_DONE = object()


def prefetch(batches: Iterator[dict[str, torch.Tensor]], depth: int = 2,
             pin_memory: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Assemble batches in a background thread, ``depth`` ahead of training, optionally in pinned memory (so the
    copy to a GPU is asynchronous). Tensor work releases the GIL, so assembly overlaps the GPU's work.

    The order is unchanged. Closing the iterator early (an exception in training) stops the thread before
    returning, so nothing touches the batch generator afterwards (a rollback restores it)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if pin_memory:
                    batch = {k: v.pin_memory() for k, v in batch.items()}
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=work, name="stprivacy-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def training_batches(clips: ClipSet, batch_size: int, *, generator: torch.Generator, hflip: bool,
                     device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """Shuffled training batches; on a GPU assembled ahead in pinned memory by :func:`prefetch`, videos left uint8
    (converted to float on the GPU by :func:`~stprivacy.training.distributed.backward_parts`). On a CPU they are
    made in line: a second thread would only compete with training for the same cores."""
    on_gpu = device.type == "cuda"
    batches = iterate_batches(clips, batch_size, shuffle=True, generator=generator, hflip=hflip, as_uint8=on_gpu)
    return prefetch(batches, pin_memory=True) if on_gpu else batches


@contextmanager
def epoch_batches(clips: ClipSet, batch_size: int, *, generator: torch.Generator, hflip: bool,
                  device: torch.device, desc: str, progress: bool, group: distributed.Dist | None = None,
                  draw: tuple[int, ...] = (0,)) -> Iterator[Iterator[dict[str, torch.Tensor]]]:
    """One epoch of :func:`training_batches` behind a progress bar; leaving the block (normally, or by an
    exception) stops any background assembly before the caller goes on. A global batch too short to give every
    rank a clip (:func:`~stprivacy.training.distributed.usable`) is skipped here, identically on every rank.

    ``draw`` names the epoch (phase, epoch): training clips cut from a frame pool are new for every draw and the
    same for the same draw (:meth:`~stprivacy.data.clips.ClipSet.at_draw`), so a resumed epoch sees its clips."""
    clips = clips.at_draw(draw)
    batches = training_batches(clips, batch_size, generator=generator, hflip=hflip, device=device)
    with closing(batches):
        usable = (b for b in batches if distributed.usable(b, group))
        yield tqdm(usable, total=max(1, -(-len(clips) // batch_size)), desc=desc, leave=False,
                   disable=not progress)
