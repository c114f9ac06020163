"""Video decoding, clip sampling and H.264 encoding with PyAV.

Policies (documented in the README):

* Any container and codec FFmpeg reads (HMDB51 and UCF101 are xvid ``.avi``; mp4, webm, ...). Frames come out as
  RGB uint8 ``T x H x W x 3``; grayscale and other pixel formats are converted to RGB.
* A missing, empty, corrupt or frame-less file raises :class:`~stprivacy.errors.VideoReadError`. A file that breaks
  off part way (truncated, damaged packets) yields the frames decoded before the damage, with a warning.
* A video shorter than a clip is **looped** (frame indices wrap around), so every clip has ``clip_len`` frames.
* Writing pads odd frame sizes by one pixel (H.264 with yuv420p needs even sizes) and copies no metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from stprivacy.errors import VideoReadError, VideoWriteError

log = logging.getLogger(__name__)


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    #: Frames actually decoded (containers often misstate it).
    num_frames: int


def _open(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError(f"video file is empty: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoReadError(f"cannot open video {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"no video stream in {path}")
    return container


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield RGB uint8 ``H x W x 3`` frames one by one (memory does not grow with the video's length).

    Decoding stops with a warning at the first damaged packet after at least one good frame.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        produced = 0
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
                produced += 1
        except (av.error.FFmpegError, ValueError) as exc:
            if produced == 0:
                raise VideoReadError(f"cannot decode any frame of {path}: {exc}") from exc
            log.warning("%s: decoding stopped after %d frames: %s", path, produced, exc)
        if produced == 0:
            raise VideoReadError(f"video has no decodable frame: {path}")
    finally:
        container.close()


def probe_fps(path: str | Path) -> float:
    container = _open(path)
    try:
        rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
        return float(rate) if rate else 25.0
    finally:
        container.close()


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, VideoInfo]:
    """Decode a whole video (or its first ``max_frames``) to ``T x H x W x 3`` uint8 RGB."""
    fps = probe_fps(path)
    frames = []
    for frame in iter_frames(path):
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:  # a stream that changes resolution mid-way: keep the first size
        first = frames[0].shape
        frames = [f for f in frames if f.shape == first]
        log.warning("%s: frame size changes mid-stream; kept %d frames of %s", path, len(frames), first)
    video = np.stack(frames)
    return video, VideoInfo(str(path), video.shape[2], video.shape[1], fps, len(video))


# ----------------------------------------------------------------------------------------------- sampling
def clip_indices(num_frames: int, clip_len: int, stride: int, start: int) -> np.ndarray:
    """Frame indices ``start, start + stride, ...`` (``clip_len`` of them), looping when the video is short."""
    if num_frames < 1:
        raise VideoReadError("cannot sample a clip from a video with no frame")
    return (start + stride * np.arange(clip_len)) % num_frames


def random_clip_start(num_frames: int, clip_len: int, stride: int, rng: np.random.Generator) -> int:
    span = clip_len * stride
    return int(rng.integers(0, num_frames - span + 1)) if num_frames > span else 0


def uniform_clip_starts(num_frames: int, clip_len: int, stride: int, num_clips: int) -> list[int]:
    """Evenly spaced starts of ``num_clips`` test clips (the 5 temporal clips of the protocol)."""
    span = clip_len * stride
    if num_frames <= span or num_clips == 1:
        return [max(0, (num_frames - span) // 2)] * num_clips if num_clips == 1 else [0] * num_clips
    return [int(round(s)) for s in np.linspace(0, num_frames - span, num_clips)]


def resize_short_side(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize ``T x H x W x 3`` so its shorter side is ``size`` (bilinear, aspect kept)."""
    import torch
    import torch.nn.functional as F

    t, h, w, _ = frames.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) == (h, w):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def spatial_crops(frames: np.ndarray, size: int, num_crops: int) -> list[np.ndarray]:
    """``num_crops`` square crops along the longer side (1: centre; 3: start, centre, end)."""
    _, h, w, _ = frames.shape
    if num_crops == 1:
        offsets = [0.5]
    else:
        offsets = list(np.linspace(0.0, 1.0, num_crops))
    crops = []
    for f in offsets:
        y = int(round((h - size) * (f if h > w else 0.5)))
        x = int(round((w - size) * (f if w >= h else 0.5)))
        crops.append(frames[:, y:y + size, x:x + size])
    return crops


# ----------------------------------------------------------------------------------------------- writing
def write_video(path: str | Path, frames: np.ndarray, fps: float = 25.0, crf: int = 18) -> Path:
    """Encode ``T x H x W x 3`` uint8 RGB frames as H.264 mp4 (yuv420p), with no metadata copied from anywhere."""
    with VideoWriter(path, fps=fps, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


class VideoWriter:
    """Streaming H.264 writer: frames in one by one, constant memory. Odd sizes are padded to even."""

    def __init__(self, path: str | Path, fps: float = 25.0, crf: int = 18):
        self.path = Path(path)
        self.fps, self.crf = fps, crf
        self._container = None
        self._stream = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # bitexact: the muxer writes no "Lavf..." version tag of its own
            self._container = av.open(str(self.path), mode="w", format="mp4", options={"fflags": "+bitexact"})
        except (OSError, av.error.FFmpegError) as exc:
            raise VideoWriteError(f"cannot write video {self.path}: {exc}") from exc
        # No title, date, location, comment or encoder tag of any source is copied; the muxer's own version tags
        # are switched off with bitexact flags.
        self._container.metadata.clear()

    def _start(self, height: int, width: int) -> None:
        from fractions import Fraction

        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(self.crf), "preset": "veryfast", "flags": "+bitexact"}
        self._stream.metadata.clear()

    def write(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise VideoWriteError(f"frames must be H x W x 3 uint8, got {frame.shape} {frame.dtype}")
        if self._stream is None:
            self._start(*frame.shape[:2])
        h, w = frame.shape[:2]
        if (h + h % 2, w + w % 2) != (self._stream.height, self._stream.width):
            raise VideoWriteError(f"frame size {w}x{h} differs from the stream's first frame")
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        try:
            for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                self._container.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            raise VideoWriteError(f"cannot write video {self.path}: {exc}") from exc

    def close(self) -> None:
        if self._container is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
        except (OSError, av.error.FFmpegError) as exc:
            raise VideoWriteError(f"cannot finish video {self.path}: {exc}") from exc
        finally:
            self._container = None
        if self._stream is None:
            self.path.unlink(missing_ok=True)
            raise VideoWriteError(f"no frame was written to {self.path}")

    def __enter__(self) -> VideoWriter:
        return self

    def abort(self) -> None:
        """Close without finishing and delete the partial file (after an error)."""
        if self._container is not None:
            try:
                self._container.close()
            except (OSError, av.error.FFmpegError):
                pass
            self._container = None
        self.path.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()
