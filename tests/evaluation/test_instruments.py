"""The instruments: actor coverage, the keep pattern's leak, masks read off a published video, the phase-3 clips'
masks."""

import math

import numpy as np
import pytest
import torch

from stprivacy.data.clips import ClipSet
from stprivacy.data.synthetic import synth_preset
from stprivacy.data.synthetic.render import render_clip
from stprivacy.evaluation.instruments import (
    actor_coverage,
    coverage,
    keep_mask_from_video,
    keep_pattern_leak,
    oracle_coverage,
    publication_gap,
    published_masks,
    ridge_leak,
    tubelet_share,
)
from stprivacy.evaluation.phase3 import anonymize_clips
from stprivacy.layers.tubelets import TubeletGrid
from stprivacy.models import STPrivacy
from stprivacy.runtime import RuntimeConfig

GRID = TubeletGrid(4, 8, 8, (2, 4, 4))  # 2 slices x 4 tokens


def test_tubelet_share_is_the_covered_fraction_of_each_tubelet():
    masks = torch.zeros(1, 4, 8, 8, dtype=torch.uint8)
    masks[0, :2, :4, :4] = 255  # slice 0, token 0 fully covered
    masks[0, 2:, 4:, 4:6] = 255  # slice 1, token 3 half covered
    share = tubelet_share(masks, GRID)
    expected = torch.tensor([[[1.0, 0, 0, 0], [0, 0, 0, 0.5]]])
    torch.testing.assert_close(share, expected)


def test_coverage_is_one_for_random_choices_and_the_oracle_beats_it():
    gen = torch.Generator().manual_seed(0)
    share = torch.rand(400, 4, 16, generator=gen) ** 3
    assert coverage(torch.ones_like(share), share) == pytest.approx(1.0)
    random_keep = (torch.rand(share.shape, generator=gen) < 0.3).float()
    assert coverage(random_keep, share) == pytest.approx(1.0, abs=0.05)
    assert oracle_coverage(share, 0.7, 3) > 2.0
    assert coverage(1 - random_keep, share) == pytest.approx(1.0, abs=0.05)


def test_mask_from_video_sees_only_what_the_video_shows():
    video = torch.zeros(1, 3, 4, 8, 8, dtype=torch.uint8)
    video[0, 1, 0, 0, 0] = 3  # one pixel of slice 0, token 0
    video[0, :, 3, 7, 7] = 200  # slice 1, token 3
    mask = keep_mask_from_video(video, GRID)
    assert mask.tolist() == [[[1, 0, 0, 0], [0, 0, 0, 1]]]


class PaintsOneKeptTubeletBlack(torch.nn.Module):
    """An anonymizer stand-in whose top-k keeps every tubelet but paints the first one of each slice black."""

    def __init__(self, model):
        super().__init__()
        self.model, self.grid = model, model.grid

    def anonymize(self, video, keep_ratio):
        out, keep = self.model.anonymize(video, keep_ratio)
        out = out.clone()
        out[:, :, :, :8, :8] = 0  # token 0 of every slice
        return out, keep


def test_phase3_masks_come_from_the_published_video_not_the_anonymizer():
    torch.manual_seed(0)
    model = PaintsOneKeptTubeletBlack(STPrivacy.from_preset("tiny", num_classes=3).eval())
    clips = ClipSet(torch.randint(1, 255, (2, 3, 8, 32, 32), dtype=torch.uint8), torch.tensor([0, 1]),
                    torch.zeros(2, 5, dtype=torch.long))
    published = anonymize_clips(model, clips, 1.0, RuntimeConfig(progress=False))
    keep = published.keep_masks[:, 0]
    # the anonymizer kept all 16 tokens per slice (a = 1); the video shows 15, and the mask says 15
    assert (keep[..., 0] == 0).all() and (keep[..., 1:] == 1).all()


def test_an_actor_selector_scores_the_oracle_and_the_inverse_scores_below_one():
    cfg = synth_preset("tiny")
    rendered = [render_clip((0, 9, i), cfg) for i in range(8)]
    actor = torch.from_numpy(np.stack([r.actor_mask for r in rendered]))
    person = torch.from_numpy(np.stack([r.person_mask for r in rendered]))
    assert ((person >= actor) | (actor == 0)).all()  # the actor is part of the union mask
    model = STPrivacy.from_preset("tiny", num_classes=3)
    share = tubelet_share(actor, model.grid)

    class Oracle(torch.nn.Module):
        def __init__(self, sign):
            super().__init__()
            self.sign, self.grid, self.scorers = sign, model.grid, model.scorers

        def anonymize(self, video, keep_ratio):
            idx = torch.arange(len(video)) + self.offset
            k = max(1, int(16 * keep_ratio**3))
            top = (self.sign * share[idx]).topk(k, -1).indices
            return video, torch.zeros_like(share[idx]).scatter_(-1, top, 1.0)

    clips = ClipSet(torch.from_numpy(np.stack([r.frames for r in rendered])).permute(0, 4, 1, 2, 3),
                    torch.zeros(8, dtype=torch.long), torch.zeros(8, 5, dtype=torch.long),
                    person_masks=person, actor_masks=actor)
    runtime = RuntimeConfig(progress=False)
    best, worst = Oracle(1.0), Oracle(-1.0)
    best.offset = worst.offset = 0
    good = actor_coverage(best, clips, 0.7, runtime, batch_size=8)
    bad = actor_coverage(worst, clips, 0.7, runtime, batch_size=8)
    assert good.coverage == pytest.approx(good.oracle) and good.coverage > 1.5
    assert bad.coverage < 0.5


def test_keep_pattern_leak_reads_a_pattern_that_shows_the_attribute_and_not_a_random_one():
    gen = torch.Generator().manual_seed(0)
    attributes = torch.randint(2, (200, 2), generator=gen)
    random = (torch.rand(200, 4, 16, generator=gen) < 0.3).float()
    telling = random.clone()
    telling[:, :, 0] = attributes[:, :1].float()  # tubelet 0 is kept exactly when attribute 0 is 1
    telling[:, :, 1] = attributes[:, 1:].float()
    assert keep_pattern_leak(telling, attributes) > 95
    assert 40 < keep_pattern_leak(random, attributes) < 62
    # an attribute that never varies cannot be read: left out, and with nothing left the reading is undefined
    constant = torch.zeros(200, 2, dtype=torch.long)
    assert math.isnan(keep_pattern_leak(telling, constant))


def test_ridge_leak_reads_a_published_cell_that_shows_the_attribute_and_not_noise():
    gen = torch.Generator().manual_seed(0)
    attributes = torch.randint(2, (120, 2), generator=gen)
    videos = torch.randint(60, 200, (120, 3, 4, 16, 16), generator=gen, dtype=torch.uint8)
    names = ["a0", "a1"]
    noise = ClipSet(videos.clone(), torch.zeros(120, dtype=torch.long), attributes, names, ["p0", "p1"])
    assert 35 < ridge_leak(noise, cells=4) < 70  # chance is the attribute's prior, about 50
    telling = videos.clone()
    telling[:, 0, :, :4, :4] = (attributes[:, 0] * 200 + 20).to(torch.uint8).view(-1, 1, 1, 1)
    clips = ClipSet(telling, torch.zeros(120, dtype=torch.long), attributes, names, ["p0", "p1"])
    ap_telling = ridge_leak(clips, cells=4)
    assert ap_telling > 70  # attribute 0 at 100, attribute 1 at chance: the mean of the two
    assert math.isnan(ridge_leak(clips, cells=5))  # 16 x 16 frames do not divide into a 5 x 5 grid


def test_published_masks_are_the_inference_masks_and_leave_the_model_in_training_mode():
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, selection="topk").train()
    video = torch.rand(4, 3, 8, 32, 32)
    keep = published_masks(model, video, 0.7)
    assert model.training and not keep.requires_grad
    model.eval()
    torch.testing.assert_close(keep, model.anonymize(video, 0.7)[1])


class ReadsNegativePixels(torch.nn.Module):
    """An 'action recognizer' that says class 0 when the video has a pixel below 0, else class 1: a code that
    only the float output carries."""

    def forward(self, video, keep_mask=None):
        below = (video.flatten(1).amin(1) < 0).float()
        return torch.stack([below, 1 - below], dim=1)


def test_publication_gap_sees_a_code_outside_the_range_and_tubelets_painted_black():
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3).train()
    with torch.no_grad():
        model.to_pixels.weight.zero_()
        model.to_pixels.bias.fill_(0.5)
        model.to_pixels.bias[0] = -0.5  # one pixel of every kept tubelet below 0: the only code, lost when clamped
    clips = ClipSet(torch.randint(0, 255, (5, 3, 8, 32, 32), dtype=torch.uint8), torch.zeros(5, dtype=torch.long),
                    torch.zeros(5, 5, dtype=torch.long))
    numel = model.to_pixels.bias.numel()
    gap = publication_gap(model, ReadsNegativePixels(), clips, 0.7, RuntimeConfig(progress=False), batch_size=2)
    assert model.training  # its mode is restored
    assert gap.float_top1 == 100.0 and gap.published_top1 == 0.0
    assert gap.clamped == pytest.approx(1 / numel) and gap.painted_black == 0.0
    # the clips it measured, as the published-output path makes them (the other instruments read these)
    from stprivacy.evaluation.phase3 import anonymize_clips

    reference = anonymize_clips(model, clips, 0.7, RuntimeConfig(progress=False), batch_size=2)
    model.train()
    assert torch.equal(gap.published.videos, reference.videos)
    assert torch.equal(gap.published.keep_masks, reference.keep_masks)
    assert torch.equal(gap.published.actions, clips.actions)
    with torch.no_grad():
        model.to_pixels.bias.fill_(-0.5)  # every kept tubelet black once published
    gap = publication_gap(model, ReadsNegativePixels(), clips, 0.7, RuntimeConfig(progress=False))
    assert gap.clamped == 1.0 and gap.painted_black == 1.0
