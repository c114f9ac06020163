import pytest
import torch

from stprivacy.evaluation.leakage import action_probe, colour_probe, fine_pattern_share
from stprivacy.models.baselines.fixed import pixelate


def _clips(n=120, seed=0):
    """Grey clips with a square whose colour follows attribute 0 and whose fine texture follows attribute 1."""
    g = torch.Generator().manual_seed(seed)
    attrs = torch.randint(0, 2, (n, 2), generator=g)
    videos = torch.full((n, 3, 2, 16, 16), 0.5)
    for i in range(n):
        videos[i, 0, :, 4:12, 4:12] = 0.8 if attrs[i, 0] else 0.2
        if attrs[i, 1]:  # a zero-mean checkerboard: the histogram moves little, the block means not at all
            checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(4, 4) * 0.05
            videos[i, 1, :, 4:12, 4:12] += checker
    return videos, attrs


def test_colour_probe_reads_a_colour_attribute_and_not_a_shuffled_one():
    videos, attrs = _clips()
    aps = colour_probe(videos, attrs)
    assert aps[0] > 95
    shuffled = attrs[torch.randperm(len(attrs), generator=torch.Generator().manual_seed(1))]
    assert colour_probe(videos, shuffled)[0] < 75


def test_fine_pattern_share_is_zero_for_block_constant_video_and_high_for_a_pixel_code():
    videos, _ = _clips()
    frames = videos.transpose(1, 2).reshape(-1, 3, 16, 16)
    blocky = pixelate(frames, 4).reshape(videos.shape[0], 2, 3, 16, 16).transpose(1, 2)
    assert fine_pattern_share(blocky, 4) < 1e-6
    noise = torch.rand(8, 3, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    assert fine_pattern_share(noise, 4) > 0.8
    # black pixels (dropped tubelets) are not content: blacking half the noise changes the share little
    half = noise.clone()
    half[..., :8] = 0
    assert abs(fine_pattern_share(half, 4) - fine_pattern_share(noise, 4)) < 0.1


def test_black_pixels_inside_a_block_are_not_content_and_the_share_stays_below_one():
    videos, _ = _clips()
    blackened = videos.clone()
    blackened[:, :, :, 5:11, 5:11] = 0  # a black shape whose edges cut through 4 x 4 blocks
    assert 0 <= fine_pattern_share(blackened, 4) <= 1
    frames = videos.transpose(1, 2).reshape(-1, 3, 16, 16)
    blocky = pixelate(frames, 4).reshape(videos.shape[0], 2, 3, 16, 16).transpose(1, 2).clone()
    blocky[:, :, :, 5:11, 5:11] = 0
    assert fine_pattern_share(blocky, 4) < 1e-6  # constant blocks stay constant around a black cut-out


def test_motion_probe_reads_how_strongly_a_moving_square_contrasts_and_not_its_still_colour():
    from stprivacy.evaluation.leakage import motion_energy, motion_probe

    g = torch.Generator().manual_seed(0)
    n = 160
    attrs = torch.randint(0, 2, (n, 2), generator=g)
    videos = torch.full((n, 3, 4, 16, 16), 0.5)
    for i in range(n):
        shade = 0.9 if attrs[i, 0] else 0.55  # attribute 0: the moving square's contrast with the background
        for t in range(4):
            videos[i, :, t, 4:12, 2 + 2 * t:6 + 2 * t] = shade
        videos[i, 0, :, 0:2, 0:2] = 0.1 if attrs[i, 1] else 0.9  # attribute 1: a still patch, no motion
    assert motion_energy(videos, 8).shape == (n, 3 * 2 * 2)
    aps = motion_probe(videos, attrs)
    assert aps[0] > 95  # the same motion, drawn with more contrast, tells the attribute
    assert aps[1] < 75  # a colour that never moves is not in the motion energy
    with pytest.raises(ValueError, match="cells"):
        motion_energy(videos, 5)



def test_attribute_difference_maps_show_where_and_in_which_colour_an_attribute_differs():
    from stprivacy.evaluation.leakage import attribute_difference_maps

    videos, attrs = _clips()
    maps = attribute_difference_maps(videos, attrs)
    assert maps.shape == (2, 3, 16, 16)
    # attribute 0 is the square's red level, 0.8 against 0.2: +0.6 inside the square in red, nothing elsewhere
    torch.testing.assert_close(maps[0, 0, 4:12, 4:12], torch.full((8, 8), 0.6))
    assert maps[0, 0, :4].abs().max() == 0 and maps[0, 2].abs().max() == 0  # blue never changes
    # attribute 1 is a zero-mean texture in green: its frame-mean map is the checkerboard itself
    assert maps[1, 1, 4:12, 4:12].abs().mean() == pytest.approx(0.05, abs=1e-6)
    # an attribute every clip has gives a zero map, not NaN
    assert torch.equal(attribute_difference_maps(videos, torch.ones(len(videos), 1, dtype=torch.long)),
                       torch.zeros(1, 3, 16, 16))


def test_action_probe_reads_classes_placed_along_a_direction_and_not_shuffled_ones():
    g = torch.Generator().manual_seed(0)
    actions = torch.randint(0, 4, (200,), generator=g)
    feats = torch.randn(200, 6, generator=g)
    feats[:, 2] += 3.0 * actions  # the class is a level along one feature
    assert action_probe(feats.numpy(), actions) > 90
    assert action_probe(feats.numpy(), actions[torch.randperm(200, generator=g)]) < 45  # chance is 25
