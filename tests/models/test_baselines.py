import math

import pytest
import torch

from stprivacy.data.clips import ClipSet
from stprivacy.errors import ConfigError
from stprivacy.models.baselines import FIXED_BASELINES, apply_baseline
from stprivacy.models.baselines.fixed import gaussian_blur, gaussian_kernel, pixelate


def clipset(videos, masks=None):
    n = videos.shape[0]
    return ClipSet(videos, torch.zeros(n, dtype=torch.long), torch.zeros(n, 5, dtype=torch.long),
                   person_masks=masks)


def test_pixelate_is_the_block_mean():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = pixelate(x, 2)
    top_left = (0 + 1 + 4 + 5) / 4
    assert out[0, 0, 0, 0] == out[0, 0, 1, 1] == top_left
    assert out[0, 0, 3, 3] == (10 + 11 + 14 + 15) / 4


def test_gaussian_kernel_and_blur_of_a_delta():
    k = gaussian_kernel(1.0)
    assert len(k) == 7 and k.sum().item() == pytest.approx(1.0)
    assert k[3].item() == pytest.approx(1 / sum(math.exp(-(i**2) / 2) for i in range(-3, 4)))
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0
    out = gaussian_blur(x, 1.0)
    torch.testing.assert_close(out[0, 0, 4:11, 4:11], torch.outer(k, k))
    assert out.sum().item() == pytest.approx(1.0)


def test_every_baseline_keeps_shape_and_dtype():
    videos = torch.randint(0, 255, (2, 3, 4, 16, 16), dtype=torch.uint8)
    masks = torch.zeros(2, 4, 16, 16, dtype=torch.uint8)
    masks[:, :, 4:12, 4:12] = 255
    for name in FIXED_BASELINES:
        out = apply_baseline(name, clipset(videos, masks))
        assert out.videos.shape == (2, 1, 3, 4, 16, 16) and out.videos.dtype == torch.uint8, name
    black = apply_baseline("blackening", clipset(videos, masks)).videos
    assert black[..., 4:12, 4:12].max() == 0 and torch.equal(black[..., :4, :], videos.unsqueeze(1)[..., :4, :])


def test_frame_difference_shows_what_moved_and_nothing_still():
    videos = torch.full((1, 3, 3, 8, 8), 100, dtype=torch.uint8)
    videos[0, :, :, 0:2, 0:2] = 250  # a still bright patch: gone
    videos[0, :, 1, 4, 4] = 120  # grey 100 -> 120 -> 100 at one pixel: a change of 20 each way
    videos[0, 0, 2, 6, 6] = 130  # only the red channel moves by 30: grey by 10
    out = apply_baseline("frame_difference", clipset(videos)).videos[0, 0]
    assert torch.equal(out[0], out[1])  # the first frame repeats the second's difference
    assert out[:, 1, 4, 4].tolist() == [80, 80, 80]  # |120 - 100| x 4, in every channel
    assert out[:, 2, 4, 4].tolist() == [80, 80, 80]
    assert out[0, 2, 6, 6].item() == 40
    assert out[:, :, 0:2, 0:2].max() == 0
    with pytest.raises(ConfigError, match="two frames"):
        apply_baseline("frame_difference", clipset(videos[:, :, :1]))


def test_blackening_without_masks_and_unknown_names_are_clear_errors():
    videos = torch.zeros(1, 3, 4, 16, 16, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="person masks"):
        apply_baseline("blackening", clipset(videos))
    with pytest.raises(ConfigError, match="available"):
        apply_baseline("pixelshuffle", clipset(videos))
    with pytest.raises(ConfigError, match="train it first"):
        apply_baseline("vita", clipset(videos))


def _conv_blur(frames, sigma):
    """The textbook form: reflect-pad, then two depthwise 1-D convolutions."""
    k = gaussian_kernel(sigma)
    r, c = (len(k) - 1) // 2, frames.shape[1]
    x = torch.nn.functional.pad(frames, (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def test_blur_equals_reflect_padded_convolution_at_the_borders_too():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 12, 20) * 255  # not square: rows and columns have their own matrices
    for sigma in (0.7, 2.6):
        torch.testing.assert_close(gaussian_blur(frames, sigma), _conv_blur(frames, sigma), atol=1e-3, rtol=1e-5)
    corner = torch.zeros(1, 1, 9, 9)
    corner[0, 0, 0, 0] = 1.0
    # reflect padding maps no outside tap onto a border pixel itself (-1 -> 1), so a corner delta loses mass
    assert gaussian_blur(corner, 1.0).sum().item() < 1.0
    with pytest.raises(ConfigError, match="larger"):
        gaussian_blur(torch.zeros(1, 1, 4, 4), 2.0)


def test_fixed_baselines_map_each_frame_of_each_view_in_chunks(monkeypatch):
    from stprivacy.models.baselines import fixed

    torch.manual_seed(0)
    videos = torch.randint(0, 255, (5, 2, 3, 4, 8, 8), dtype=torch.uint8)  # 5 videos x 2 views
    clips = ClipSet(videos, torch.zeros(5, dtype=torch.long), torch.zeros(5, 5, dtype=torch.long))
    monkeypatch.setattr(fixed, "CHUNK_VIDEOS", 2)  # 3 chunks, the last one short
    out = apply_baseline("downsample2x", clips).videos
    for n, v, t in [(0, 0, 0), (2, 1, 3), (4, 1, 2)]:
        frame = videos[n, v, :, t].float()[None]
        expected = torch.nn.functional.avg_pool2d(frame, 2).repeat_interleave(2, -1).repeat_interleave(2, -2)
        assert torch.equal(out[n, v, :, t], expected[0].round().to(torch.uint8))
    blurred = apply_baseline("blur_strong", clips).videos
    sigma = fixed.BLUR_SIGMA["blur_strong"] * 8
    expected = _conv_blur(videos[3, 0].movedim(1, 0).float(), sigma).round().clamp(0, 255).to(torch.uint8)
    assert (blurred[3, 0].movedim(1, 0).int() - expected.int()).abs().max() <= 1  # float rounding at .5
