"""Mini-batches from an in-memory :class:`ClipSet`, without DataLoader overhead."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from stprivacy.data.clips import ClipSet, to_float


def iterate_batches(clips: ClipSet, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None,
                    random_view: bool = True, drop_last: bool = False,
                    hflip: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield dicts with ``video`` (B x 3 x T x H x W float in [0, 1]), ``action``, ``attributes`` and, when
    present, ``keep_mask``. Training picks one random view per video; evaluation takes :func:`all_views`.
    With ``hflip`` each clip is mirrored left-right with probability 1/2 (its keep mask too)."""
    n = len(clips)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        views = (torch.randint(clips.views, (len(idx),), generator=generator) if random_view and clips.views > 1
                 else torch.zeros(len(idx), dtype=torch.long))
        batch = {
            "video": to_float(clips.videos[idx, views]),
            "action": clips.actions[idx],
            "attributes": clips.attributes[idx],
        }
        if clips.keep_masks is not None:
            batch["keep_mask"] = clips.keep_masks[idx, views].float()
        if hflip:
            flip = torch.rand(len(idx), generator=generator) < 0.5
            batch["video"][flip] = batch["video"][flip].flip(-1)
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
