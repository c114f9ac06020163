import pytest
import torch

from stprivacy.layers import TubeletEmbed, TubeletGrid, tubelets_to_video, video_to_tubelets


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
