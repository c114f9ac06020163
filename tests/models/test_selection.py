"""The fixed selection prior: where training clips change, per tubelet position."""

import torch

from stprivacy.models.selection import hard_topk, motion_prior


def test_motion_prior_is_highest_where_the_clips_change_and_reads_uint8_as_float():
    torch.manual_seed(0)
    videos = torch.full((5, 3, 4, 8, 8), 0.5)
    videos[:, :, 1::2, 4:, :4] = torch.rand(5, 3, 2, 4, 4)  # only the bottom-left 4 x 4 position flickers
    prior = motion_prior(videos, (2, 4, 4), chunk=2)
    assert prior.shape == (2, 4)  # 2 slices of 2 x 2 positions
    assert (prior.argmax(-1) == 2).all() and (prior[:, [0, 1, 3]] == 0).all()
    as_bytes = motion_prior((videos * 255).round().to(torch.uint8), (2, 4, 4))
    torch.testing.assert_close(as_bytes, prior, atol=2 / 255, rtol=0)


def test_hard_topk_keeps_the_k_best_of_the_tokens_still_kept_per_slice():
    score = torch.tensor([[4.0, 3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 4.0]])
    previous = torch.tensor([[0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    assert hard_topk(score, previous, 2, 2).tolist() == [[0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]]
