"""How clips are cut from a video: frames, stride, size, the training draws and the test views.

A schema module (no torch), read by :mod:`stprivacy.config` and by the decoders in :mod:`stprivacy.data.real`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClipSampling:
    num_frames: int = 16
    #: Temporal sampling stride (frames skipped between sampled frames, plus one).
    stride: int = 2
    size: int = 112
    #: Fixed training views per video when ``fresh_clips`` is off; with it, the fixed views phase 3 trains its
    #: fresh recognizers on (draws of the frame pool, anonymized once).
    train_views: int = 2
    test_clips: int = 5
    test_crops: int = 3
    #: A new temporal start and crop of every training video each epoch, cut from a frame pool decoded once
    #: (:mod:`stprivacy.data.pool`); off: ``train_views`` fixed clips per video, drawn at decode time.
    fresh_clips: bool = True
    #: Short side of the pooled training frames (0 = ``size * 8 / 7``: 128 for 112, the usual resize-then-crop).
    train_short_side: int = 0

    def pool_side(self) -> int:
        side = self.train_short_side or round(self.size * 8 / 7)
        if side < self.size:
            raise ValueError(f"sampling.train_short_side {side} is below the crop size {self.size}")
        return side
