import numpy as np
import pytest

from stprivacy.data.video_io import (
    VideoWriter,
    clip_indices,
    iter_frames,
    read_video,
    resize_short_side,
    spatial_crops,
    uniform_clip_starts,
    write_video,
)
from stprivacy.errors import VideoReadError, VideoWriteError


@pytest.fixture(scope="module")
def megamind(shared_data):
    return shared_data / "real_videos" / "Megamind.avi"


def test_reads_real_avi(megamind):
    frames, info = read_video(megamind, max_frames=30)
    assert frames.shape == (30, 528, 720, 3) and frames.dtype == np.uint8
    assert info.fps == pytest.approx(23.976, abs=0.01)
    assert frames.std() > 10  # real content, not a blank frame


def test_streaming_reader_yields_every_frame(megamind):
    count = sum(1 for _ in iter_frames(megamind))
    assert count == 270


def test_damaged_container_gives_frames_or_a_clear_error(shared_data):
    path = shared_data / "real_videos" / "Megamind_bugy.avi"
    try:
        frames, _ = read_video(path, max_frames=20)
    except VideoReadError as exc:
        assert str(path) in str(exc)
    else:
        assert frames.ndim == 4 and len(frames) > 0


def test_truncated_video_yields_the_decodable_prefix(megamind, tmp_path):
    data = megamind.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 3])
    frames, _ = read_video(cut)
    assert 10 < len(frames) < 270


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100])
def test_empty_and_garbage_files_raise_video_read_error(tmp_path, content):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(content)
    with pytest.raises(VideoReadError):
        read_video(bad)


def test_corrupted_header_raises_or_decodes_nothing_silently(megamind, tmp_path):
    data = bytearray(megamind.read_bytes())
    rng = np.random.default_rng(0)
    data[:4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    bad = tmp_path / "header.avi"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoReadError):
        read_video(bad)


def test_missing_file():
    with pytest.raises(VideoReadError, match="not found"):
        read_video("/nonexistent/video.avi")


def test_write_then_read_round_trip_with_odd_size(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((12, 33, 47, 3), dtype=np.uint8)
    frames[:, 5:25, 10:40] = rng.integers(0, 255, 3, dtype=np.uint8)  # a flat coloured block compresses well
    path = write_video(tmp_path / "out.mp4", frames, fps=10)
    back, info = read_video(path)
    assert back.shape == (12, 34, 48, 3)  # padded to even
    assert info.fps == pytest.approx(10)
    assert np.abs(back[:, :33, :47].astype(int) - frames.astype(int)).mean() < 4


def test_grayscale_source_comes_out_rgb(tmp_path):
    import av

    path = tmp_path / "gray.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=5)
        s.width, s.height, s.pix_fmt = 32, 24, "gray"
        for i in range(4):
            f = av.VideoFrame.from_ndarray(np.full((24, 32), 40 * i, np.uint8), format="gray")
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    frames, _ = read_video(path)
    assert frames.shape == (4, 24, 32, 3)
    assert np.abs(frames[2].astype(int) - 80).max() <= 2




def test_writer_rejects_bad_frames(tmp_path):
    with pytest.raises(VideoWriteError, match="uint8"):
        with VideoWriter(tmp_path / "x.mp4") as w:
            w.write(np.zeros((8, 8), np.uint8))


def test_writer_into_a_file_path_parent_fails_clearly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(VideoWriteError):
        write_video(blocker / "out.mp4", np.zeros((2, 8, 8, 3), np.uint8))


def test_short_videos_loop():
    assert clip_indices(3, 5, 1, 0).tolist() == [0, 1, 2, 0, 1]
    assert clip_indices(10, 4, 2, 3).tolist() == [3, 5, 7, 9]
    with pytest.raises(VideoReadError):
        clip_indices(0, 4, 1, 0)


def test_test_views_cover_the_video():
    starts = uniform_clip_starts(100, 8, 2, 5)
    assert starts[0] == 0 and starts[-1] == 100 - 16 and len(starts) == 5
    assert uniform_clip_starts(10, 8, 2, 5) == [0] * 5


def test_resize_and_three_crops():
    frames = np.zeros((2, 60, 120, 3), np.uint8)
    frames[:, :, :40] = 255
    small = resize_short_side(frames, 30)
    assert small.shape == (2, 30, 60, 3)
    crops = spatial_crops(small, 30, 3)
    assert [c.shape for c in crops] == [(2, 30, 30, 3)] * 3
    assert crops[0].mean() > crops[1].mean() > crops[2].mean()


def test_container_without_frames_raises(tmp_path):
    import av

    path = tmp_path / "zero.avi"
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        c.start_encoding()  # a valid header, then no frame at all
    assert path.stat().st_size > 0
    with pytest.raises(VideoReadError, match="no decodable frame"):
        read_video(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(VideoReadError, match="no video stream"):
        read_video(path)
