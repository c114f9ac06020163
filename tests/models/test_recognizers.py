import pytest
import torch

from stprivacy import FrameAttacker, STPrivacy, VideoRecognizer
from stprivacy.models import model_preset


def test_topk_mask_gather_equals_masked_attention():
    rec = VideoRecognizer(model_preset("tiny"), 5).eval()
    video = torch.rand(2, 3, 8, 32, 32)
    anon = STPrivacy.from_preset("tiny").eval()
    _, mask = anon.anonymize(video, 0.7)
    gathered = rec(video, mask)
    masked = rec(video, mask.clone().requires_grad_())  # forces the masked-attention path
    torch.testing.assert_close(gathered, masked, atol=1e-5, rtol=1e-4)


def test_mask_gradient_flows_through_recognizer():
    rec = VideoRecognizer(model_preset("tiny"), 3)
    mask = (torch.rand(2, 4, 16) > 0.3).float().requires_grad_()
    rec(torch.rand(2, 3, 8, 32, 32), mask).sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0


def test_a_batch_of_black_published_clips_gets_finite_scores_like_a_black_clip_beside_others():
    # an anonymizer may paint every kept tubelet of a clip black: the published mask is then all zero
    torch.manual_seed(0)
    rec = VideoRecognizer(model_preset("tiny"), 3).eval()
    black = torch.zeros(2, 3, 8, 32, 32)
    alone = rec(black, torch.zeros(2, 4, 16))
    assert torch.isfinite(alone).all()
    other = torch.zeros(1, 4, 16)
    other[..., :5] = 1  # beside a clip that keeps something, the batch takes the masked path anyway
    mixed = rec(torch.cat([black[:1], torch.rand(1, 3, 8, 32, 32)]), torch.cat([torch.zeros(1, 4, 16), other]))
    torch.testing.assert_close(alone[0], mixed[0])


def test_recognizer_rejects_wrong_mask_shape():
    rec = VideoRecognizer(model_preset("tiny"), 3)
    with pytest.raises(ValueError, match="keep mask"):
        rec(torch.rand(1, 3, 8, 32, 32), torch.ones(1, 4, 15))


def test_frame_attacker_pools_frame_scores_over_time():
    att = FrameAttacker(5).eval()
    video = torch.rand(2, 3, 4, 32, 32)
    out = att(video)
    assert out.shape == (2, 5)
    # reversing time leaves a time-mean of per-frame scores unchanged
    torch.testing.assert_close(att(video.flip(2)), out, atol=1e-5, rtol=1e-5)


def _count(m):
    return sum(p.numel() for p in m.parameters())


def test_vit_s_parameter_counts_are_those_of_a_vit_s():
    anon = STPrivacy.from_preset("vit-s")
    rec = VideoRecognizer(model_preset("vit-s"), 51)
    assert 21.5e6 < _count(rec) < 23.0e6
    assert 22.0e6 < _count(anon) < 23.5e6


def test_vit_t_shapes():
    anon = STPrivacy.from_preset("vit-t").eval()
    video, mask = anon.anonymize(torch.rand(1, 3, 16, 112, 112), 0.5)
    assert video.shape == (1, 3, 16, 112, 112) and mask.shape == (1, 8, 49)
    assert int(mask[0, 0].sum()) == int(49 * 0.5**3)


def test_cell_linear_attacker_is_one_linear_map_of_every_frames_cell_means_averaged_over_time():
    from stprivacy.models.config import FrameAttackerConfig
    from stprivacy.models.recognizers import CellLinearAttacker, build_attacker

    attacker = build_attacker("linear", model_preset("tiny"), FrameAttackerConfig(linear_cells=4), 5)
    assert isinstance(attacker, CellLinearAttacker)
    video = torch.rand(2, 3, 4, 16, 16)
    assert torch.equal(attacker(video), torch.zeros(2, 5))  # a fresh one starts at chance
    torch.nn.init.normal_(attacker.head.weight)
    means = video.reshape(2, 3, 4, 4, 4, 4, 4).mean(dim=(4, 6))  # B x C x T x 4 x 4 cells of 4 x 4 pixels
    frame_logits = means.transpose(1, 2).reshape(2, 4, -1) @ attacker.head.weight.T + attacker.head.bias
    torch.testing.assert_close(attacker(video), frame_logits.mean(dim=1))
    video.requires_grad_(True)
    attacker(video).sum().backward()
    assert video.grad.abs().sum() > 0  # the anonymizer learns through it
    with pytest.raises(ValueError, match="grid"):
        CellLinearAttacker(5, cells=5)(torch.rand(1, 3, 2, 16, 16))
