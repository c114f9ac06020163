import pytest
import torch

from stprivacy.layers import (
    TubeletEmbed,
    TubeletGrid,
    keep_mask_pixels,
    kept_pixels,
    shown_tubelets,
    tubelets_to_video,
    video_to_tubelets,
)


def test_video_tubelet_round_trip_and_time_major_order():
    grid = TubeletGrid(num_frames=4, height=8, width=12, tubelet=(2, 4, 4))
    video = torch.randn(2, 3, 4, 8, 12)
    tok = video_to_tubelets(video, grid.tubelet)
    assert tok.shape == (2, grid.num_tokens, grid.tubelet_numel)
    assert torch.equal(tubelets_to_video(tok, grid), video)
    # token 1 * N + 4 is slice 1 (frames 2-3), grid row 1, column 1 (rows of 3 patches)
    s = 1 * grid.tokens_per_slice + 1 * 3 + 1
    expected = video[:, :, 2:4, 4:8, 4:8].reshape(2, -1)
    assert torch.equal(tok[:, s], expected)


def test_embedding_matches_linear_projection_of_tubelets():
    grid = TubeletGrid(4, 8, 8, (2, 4, 4))
    emb = TubeletEmbed(grid, 5)
    video = torch.randn(1, 3, 4, 8, 8)
    tok = video_to_tubelets(video, grid.tubelet)
    manual = tok @ emb.proj.weight.reshape(5, -1).T + emb.proj.bias
    torch.testing.assert_close(emb(video), manual, atol=1e-5, rtol=1e-5)


def test_grid_rejects_indivisible_sizes_and_bad_videos():
    with pytest.raises(ValueError, match="not divisible"):
        TubeletGrid(5, 8, 8, (2, 4, 4))
    grid = TubeletGrid(4, 8, 8, (2, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        grid.check_video(torch.zeros(1, 3, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="B x 3 x 4 x 8 x 8"):
        grid.check_video(torch.zeros(1, 3, 4, 8, 9))


def test_standardising_embedding_equals_the_convolution_of_the_standardised_video():
    """Folding ``(x - m) / s`` into the weights and computing the map as a matrix product is the same map, in value
    and in the gradients of the video and of the (unchanged) Conv3d parameters."""
    torch.manual_seed(0)
    grid = TubeletGrid(num_frames=4, height=8, width=12, tubelet=(2, 4, 4))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    emb = TubeletEmbed(grid, 6, mean, std)
    video = torch.rand(2, 3, 4, 8, 12, requires_grad=True)
    out = emb(video)
    m, s = torch.tensor(mean).view(1, 3, 1, 1, 1), torch.tensor(std).view(1, 3, 1, 1, 1)
    ref = torch.nn.functional.conv3d((video - m) / s, emb.proj.weight, emb.proj.bias, stride=(2, 4, 4))
    ref = ref.flatten(2).transpose(1, 2)
    assert out.shape == (2, grid.num_tokens, 6)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), [video, emb.proj.weight, emb.proj.bias])
    ref_grads = torch.autograd.grad((ref * upstream).sum(), [video, emb.proj.weight, emb.proj.bias])
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)
    assert set(emb.state_dict()) == {"proj.weight", "proj.bias"}  # checkpoint keys unchanged, statistics not saved
    with pytest.raises(ValueError, match="3 values"):
        TubeletEmbed(grid, 6, mean[:2], std)


def test_keep_mask_pixels_covers_exactly_the_kept_tubelets():
    grid = TubeletGrid(4, 8, 8, (2, 4, 4))
    mask = torch.tensor([[[1.0, 0, 0, 0], [0, 0, 0, 1]]])
    pixels = keep_mask_pixels(mask, grid)
    assert pixels.shape == (1, 1, 4, 8, 8)
    assert (pixels[0, 0, :2, :4, :4] == 1).all() and (pixels[0, 0, 2:, 4:, 4:] == 1).all()
    assert pixels.sum() == 2 * 2 * 4 * 4


def test_kept_pixels_is_the_original_pixels_of_the_kept_tubelets_and_passes_the_mask_gradient():
    video = torch.rand(2, 3, 8, 32, 32)
    mask = (torch.rand(2, 4, 16) > 0.5).float().requires_grad_()
    view = kept_pixels(video, mask, (2, 8, 8))
    tubelets, original = video_to_tubelets(view, (2, 8, 8)), video_to_tubelets(video, (2, 8, 8))
    kept = mask.detach().reshape(2, -1) > 0
    assert torch.equal(tubelets[kept], original[kept]) and torch.count_nonzero(tubelets[~kept]) == 0
    view.sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


def test_shown_tubelets_are_those_with_a_non_zero_pixel_in_uint8_and_float_videos():
    video = torch.zeros(1, 3, 4, 8, 8)
    video[0, 2, 3, 7, 7] = 0.01  # one pixel of the last tubelet (slice 1, bottom right)
    video[0, 0, 0, 0, 0] = 1.0  # one pixel of the first
    shown = shown_tubelets(video, (2, 4, 4))
    assert shown.tolist() == [[True, False, False, False, False, False, False, True]]
    assert torch.equal(shown_tubelets((video * 255).round().to(torch.uint8), (2, 4, 4)), shown)
