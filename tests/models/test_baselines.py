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


def test_blackening_without_masks_and_unknown_names_are_clear_errors():
    videos = torch.zeros(1, 3, 4, 16, 16, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="person masks"):
        apply_baseline("blackening", clipset(videos))
    with pytest.raises(ConfigError, match="available"):
        apply_baseline("pixelshuffle", clipset(videos))
    with pytest.raises(ConfigError, match="train it first"):
        apply_baseline("vita", clipset(videos))
