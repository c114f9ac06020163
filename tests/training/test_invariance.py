"""The invariance terms: the random re-colouring, phase 2's colour term on the output, phase 1's on the
selection, phase 2's term on the dropped tubelets, and the random morphology of phase 2's shape term."""

import pytest
import torch

from stprivacy.config import load_experiment
from stprivacy.errors import ConfigError
from stprivacy.layers.tubelets import video_to_tubelets
from stprivacy.models import STPrivacy
from stprivacy.training.invariance import (
    colour_invariance_loss,
    dropped_invariance_loss,
    phase1_selection_invariance,
    random_morphology,
    random_recolour,
    selection_invariance_loss,
    shape_invariance_loss,
    swap_dropped,
)
from stprivacy.training.phase1 import phase1_step

LIGHT, DARK = (0.95, 0.80, 0.68), (0.40, 0.26, 0.17)  # the renderer's two skin tones


def second_pass_spy(selection: str = "topk"):
    """A tiny anonymizer's training-mode pass on a random clip at a = 0.5, and a spy that records every further
    pass an invariance term makes (its input, its keyword arguments, its output)."""
    torch.manual_seed(0)
    f = STPrivacy.from_preset("tiny", num_classes=4, selection=selection).train()
    video = torch.rand(2, 3, 8, 32, 32)
    calls = []

    def spy(v, **kw):
        other = f(v, **kw)
        calls.append((v, kw, other))
        return other

    return f, video, f(video, keep_ratio=0.5), spy, calls


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


def test_morphology_grows_or_shrinks_a_dark_figure_per_clip_and_keeps_the_frame():
    video = torch.ones(40, 3, 2, 12, 12)
    video[..., 4:8, 5:7] = 0.2  # a dark 4 x 2 limb on a light wall, in every frame
    out = random_morphology(video, 3, torch.Generator().manual_seed(0))
    assert out.shape == video.shape
    dark = (out[:, 0, 0] < 0.5).flatten(1).sum(1)
    assert set(dark.tolist()) == {0, 6 * 4}  # dilated away (bright grows) or eroded to 6 x 4 (dark grows)
    assert 5 < (dark == 0).sum() < 35  # both, drawn per clip
    per_clip = (out[:, 0] < 0.5).flatten(2).sum(2)  # every frame of a clip gets the same operation
    assert (per_clip == per_clip[:, :1]).all()
    with pytest.raises(ValueError, match="size"):
        random_morphology(video, 1)
    with pytest.raises(ValueError, match="B x C x T x H x W"):
        random_morphology(torch.rand(3, 2, 4, 4))


def test_shape_invariance_compares_the_output_on_a_morphed_clip_through_the_same_keep_mask():
    f, video, out, spy, calls = second_pass_spy()
    loss = shape_invariance_loss(spy, video, out, 0.5, f.grid.tubelet)
    (seen, _, other), = calls
    assert not torch.equal(seen, video) and seen.shape == video.shape  # the second pass saw a morphed clip
    assert torch.equal(other.keep_mask, out.keep_mask)
    assert loss.item() > 0
    loss.backward()
    assert f.to_pixels.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="shape_invariance"):
        load_experiment("tiny", ["train.shape_invariance_size=1"])


def test_invariance_compares_the_two_outputs_through_the_same_keep_mask():
    f, video, out, spy, calls = second_pass_spy(selection="gumbel")
    loss = colour_invariance_loss(spy, video, out, 0.5, f.grid.tubelet)
    (_, _, other), = calls
    assert torch.equal(other.keep_mask, out.keep_mask)  # the same tubelets, so only the painting differs
    assert loss.item() > 0
    loss.backward()  # gradients reach the anonymizer through both passes
    assert f.to_pixels.weight.grad.abs().sum() > 0


def test_selection_invariance_counts_only_the_order_within_each_slice_of_the_tokens_still_competing():
    torch.manual_seed(0)
    logits = [torch.randn(2, 3, 8), torch.randn(2, 3, 8)]
    first = (torch.rand(2, 3, 8) < 0.5).float()
    decisions = [first, first]
    assert selection_invariance_loss(logits, logits, decisions).item() == 0
    # a shift and a positive scale per slice change nothing top-k reads
    moved = [x * torch.rand(2, 3, 1).add(0.5) + torch.randn(2, 3, 1) for x in logits]
    assert selection_invariance_loss(logits, moved, decisions).item() < 1e-6
    # a token the first stage dropped is no longer ranked at the second, but every token is at the first
    noise = 10 * torch.randn(2, 3, 8)
    changed = [logits[0], torch.where(first.bool(), logits[1], logits[1] + noise)]
    assert selection_invariance_loss(logits, changed, decisions).item() < 1e-6
    changed = [torch.where(first.bool(), logits[0], logits[0] + noise), logits[1]]
    assert selection_invariance_loss(logits, changed, decisions).item() > 0.1
    reordered = [logits[0].flip(-1), logits[1]]
    assert selection_invariance_loss(logits, reordered, decisions).item() > 0.1


def test_phase1_selection_invariance_reruns_the_same_decisions_on_a_recoloured_clip_and_trains_the_scorers():
    f, video, out, spy, calls = second_pass_spy()
    loss = phase1_selection_invariance(spy, video, out, 0.5)
    (seen, kw, _), = calls
    assert not torch.allclose(seen, video)  # a re-coloured copy
    assert all(torch.equal(a, b) for a, b in zip(kw["stage_masks"], out.decisions, strict=True))
    assert loss.item() > 0
    loss.backward()
    for scorer in f.scorers:
        assert sum(p.grad.abs().sum() for p in scorer.parameters() if p.grad is not None) > 0


def test_phase1_step_adds_the_weighted_selection_term_and_a_negative_weight_is_a_config_error():
    torch.manual_seed(0)
    f = STPrivacy.from_preset("tiny", num_classes=3, selection="topk").train()
    batch = {"video": torch.rand(2, 3, 8, 32, 32), "action": torch.tensor([0, 2])}
    without = phase1_step(f, f.stage_ratios(), f.grid.tubelet, batch, 0.0, keep_ratio=0.7)
    assert "selection_invariance" not in without
    losses = phase1_step(f, f.stage_ratios(), f.grid.tubelet, batch, 0.0, keep_ratio=0.7, colour_weight=3.0)
    assert losses["selection_invariance"].item() > 0
    torch.testing.assert_close(losses["total"], sum(v for k, v in losses.items() if k != "total"))
    with pytest.raises(ConfigError, match="phase1_colour_invariance"):
        load_experiment("tiny", ["train.phase1_colour_invariance=-1"])


def test_swap_dropped_takes_every_dropped_tubelet_from_the_next_clip_and_keeps_the_kept_ones():
    torch.manual_seed(0)
    video = torch.rand(3, 3, 4, 8, 8)
    keep = (torch.rand(3, 2, 4) < 0.5).float()  # tubelets 2 x 4 x 4: 2 slices of 2 x 2 positions
    swapped = video_to_tubelets(swap_dropped(video, keep, (2, 4, 4)), (2, 4, 4)).reshape(3, 2, 4, -1)
    mine = video_to_tubelets(video, (2, 4, 4)).reshape(3, 2, 4, -1)
    nxt = mine.roll(1, dims=0)
    kept = keep.bool()
    assert torch.equal(swapped[kept], mine[kept]) and torch.equal(swapped[~kept], nxt[~kept])


def test_dropped_invariance_reruns_the_same_decisions_without_the_dropped_content_and_trains_the_anonymizer():
    f, video, out, spy, calls = second_pass_spy()
    loss = dropped_invariance_loss(spy, video, out, 0.5, f.grid.tubelet)
    (seen, kw, _), = calls
    assert torch.equal(seen, swap_dropped(video, out.keep_mask, f.grid.tubelet)) and not torch.equal(seen, video)
    assert all(torch.equal(a, b) for a, b in zip(kw["stage_masks"], out.decisions, strict=True))
    # global attention before the first selection carries the dropped content into the kept output
    assert loss.item() > 0
    loss.backward()
    assert f.to_pixels.weight.grad.abs().sum() > 0 and f.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
