"""Phase 2's colour-invariance term: the random re-colouring and the term built on it."""

import pytest
import torch

from stprivacy.config import load_experiment
from stprivacy.models import STPrivacy
from stprivacy.training.invariance import colour_invariance_loss, random_recolour

LIGHT, DARK = (0.95, 0.80, 0.68), (0.40, 0.26, 0.17)  # the renderer's two skin tones


def test_recolour_is_a_per_clip_per_channel_map_into_the_unit_range():
    torch.manual_seed(0)
    video = torch.rand(4, 3, 2, 5, 5)
    video[:, :, :, 0, 0] = video[:, :, :, 4, 4]  # two pixels of the same colour in every clip and frame
    out = random_recolour(video)
    assert out.shape == video.shape and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out[:, :, :, 0, 0], out[:, :, :, 4, 4])  # same colour in, same colour out
    assert not torch.allclose(out, video)


def test_recolour_does_not_keep_skin_tones_apart():
    # over draws, the light tone's image is as often darker as lighter than the dark tone's, channel by channel:
    # no rank, hence no fixed readout, survives
    torch.manual_seed(0)
    video = torch.tensor([LIGHT, DARK]).T.reshape(1, 3, 1, 1, 2).repeat(2000, 1, 1, 1, 1)
    out = random_recolour(video)
    lighter = (out[..., 0] > out[..., 1]).float().mean().item()
    assert 0.4 < lighter < 0.6


def test_recolour_rejects_a_gamma_below_one_and_a_wrong_shape():
    with pytest.raises(ValueError, match="gamma"):
        random_recolour(torch.rand(1, 3, 2, 4, 4), gamma=0.5)
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        random_recolour(torch.rand(3, 2, 4, 4))


def test_invariance_compares_the_two_outputs_through_the_same_keep_mask():
    cfg = load_experiment("tiny")
    torch.manual_seed(0)
    f = STPrivacy(cfg.model, num_classes=4).train()
    video = torch.rand(2, 3, 8, 32, 32)
    out = f(video, keep_ratio=0.5)
    calls = []

    def spy(v, **kw):
        other = f(v, **kw)
        calls.append(other)
        return other

    loss = colour_invariance_loss(spy, video, out, 0.5, f.grid.tubelet)
    other = calls[0]
    assert torch.equal(other.keep_mask, out.keep_mask)  # the same tubelets, so only the painting differs
    assert loss.item() > 0
    loss.backward()  # gradients reach the anonymizer through both passes
    assert f.to_pixels.weight.grad.abs().sum() > 0
