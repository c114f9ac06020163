"""Decoded clips as uint8 videos: the common currency between data sources and training.

A :class:`ClipSet` is what every loader produces (synthetic renderer, HMDB51 / UCF101 / manifest decoding, an
anonymizer's output in phase 3), so the training and evaluation code never cares where clips came from.
Videos are ``N x V x 3 x T x H x W`` uint8, where ``V`` is the number of test views (1 for training clips; 15 for
5 temporal clips x 3 spatial crops); they become float in [0, 1] only batch by batch. They are a tensor in memory
(synthetic data), a file read batch by batch (:class:`~stprivacy.data.disk.DiskVideos`: decoded real data,
phase 3's transformed views) or clips cut afresh each epoch (:class:`~stprivacy.data.pool.EpochClips`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset


@dataclass
class ClipSet(Dataset):
    #: N x V x 3 x T x H x W uint8 (V views per video) or float (an anonymizer's output).
    videos: torch.Tensor
    #: N action indices.
    actions: torch.Tensor
    #: N x K {0, 1} private attributes.
    attributes: torch.Tensor
    action_names: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()
    #: Optional N x V x T x H x W uint8 person masks (the blackening baseline needs them).
    person_masks: torch.Tensor | None = None
    #: Optional N x V x T x H x W uint8 masks of the actor alone (synthetic data): the sparsifier's instrument.
    actor_masks: torch.Tensor | None = None
    #: Optional N x V x L x N keep masks that travel with anonymized clips.
    keep_masks: torch.Tensor | None = None
    #: Optional per-video identifiers (file paths) for reports.
    names: list[str] = field(default_factory=list)
    #: Optional N x 3 x T x H x W uint8 counterfactual twins: each clip with its private attributes flipped
    #: (synthetic data only, :func:`~stprivacy.data.synthetic.dataset.with_twins`).
    twins: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.videos.dim() == 5:  # N x 3 x T x H x W: one view per video
            self.videos = self.videos.unsqueeze(1)
            if self.person_masks is not None:
                self.person_masks = self.person_masks.unsqueeze(1)
            if self.actor_masks is not None:
                self.actor_masks = self.actor_masks.unsqueeze(1)
            if self.keep_masks is not None:
                self.keep_masks = self.keep_masks.unsqueeze(1)
        n = len(self.videos)
        if self.videos.dim() != 6 or self.videos.shape[2] != 3:
            raise ValueError(f"videos must be N x V x 3 x T x H x W, got {tuple(self.videos.shape)}")
        if len(self.actions) != n or len(self.attributes) != n:
            raise ValueError(f"{n} videos but {len(self.actions)} actions and {len(self.attributes)} attribute rows")

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def views(self) -> int:
        return self.videos.shape[1]

    @property
    def clip_shape(self) -> tuple[int, int, int]:
        """(T, H, W) of one clip."""
        t, h, w = self.videos.shape[3:]
        return t, h, w

    def subset(self, index: torch.Tensor) -> ClipSet:
        """The clips at ``index`` (a 1-D index tensor), with every per-clip field that is present; videos on
        disk stay on disk."""
        def pick(t):
            return None if t is None else t[index]
        # torch.Tensor has a select(dim, index) of its own: only the containers' select(index) takes an index alone
        videos = self.videos[index] if isinstance(self.videos, torch.Tensor) else self.videos.select(index)
        return ClipSet(videos, self.actions[index], self.attributes[index], self.action_names,
                       self.attribute_names, person_masks=pick(self.person_masks), actor_masks=pick(self.actor_masks),
                       keep_masks=pick(self.keep_masks),
                       names=[self.names[i] for i in index.tolist()] if self.names else [], twins=pick(self.twins))

    def at_draw(self, draw: tuple[int, ...]) -> ClipSet:
        """The clips of one draw (an epoch): fresh clips for a frame pool's training set, the same clips
        otherwise."""
        if not hasattr(self.videos, "at"):
            return self
        return dataclasses.replace(self, videos=self.videos.at(draw))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"video": self.videos[i], "action": self.actions[i], "attributes": self.attributes[i]}
        if self.keep_masks is not None:
            item["keep_mask"] = self.keep_masks[i]
        return item


def to_float(video: torch.Tensor) -> torch.Tensor:
    """uint8 video in [0, 255] -> float32 in [0, 1]; float videos pass through."""
    return video.float().div_(255.0) if video.dtype == torch.uint8 else video.float()


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Float video in [0, 1] (clamped) -> uint8 in [0, 255], rounded like a video encoder's input."""
    return (video.float().clamp(0, 1) * 255).round().to(torch.uint8)
