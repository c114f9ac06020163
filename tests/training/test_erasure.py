"""Fitting the linear erasers after phase 2 (training/erasure.py) and publishing through them."""

import torch

from stprivacy.config import load_experiment
from stprivacy.data.clips import ClipSet
from stprivacy.layers.tubelets import video_to_tubelets
from stprivacy.models import STPrivacy
from stprivacy.models.erasure import coefficients, decoder_basis
from stprivacy.runtime import RuntimeConfig
from stprivacy.training.erasure import fit_erasers, refit_in_loop


def _leaky_clips(model: STPrivacy, n: int = 96) -> ClipSet:
    """Random clips whose first attribute brightens the whole clip: a leak any linear reader finds."""
    g = torch.Generator().manual_seed(3)
    c = model.cfg
    attrs = (torch.rand(n, 2, generator=g) < 0.5).long()
    video = torch.rand(n, 3, c.num_frames, c.img_size, c.img_size, generator=g) * 0.6
    video = video + 0.35 * attrs[:, 0].float().view(n, 1, 1, 1, 1)
    return ClipSet((video * 255).round().to(torch.uint8), torch.randint(0, 3, (n,), generator=g), attrs,
                   ("a", "b", "c"), ("bright", "noise"))


def _group_gap(model: STPrivacy, clips: ClipSet, keep_ratio: float) -> float:
    """Largest gap between the attribute-0 groups' mean published coefficients."""
    basis, offset = decoder_basis(model.decode, model.cfg.embed_dim)
    video, keep = model.anonymize(clips.videos[:, 0].float() / 255, keep_ratio)
    tubelets = video_to_tubelets(video, model.grid.tubelet)
    x = coefficients(tubelets, keep.reshape(len(video), -1), basis, offset).flatten(1)
    on = clips.attributes[:, 0] == 1
    return float((x[on].mean(0) - x[~on].mean(0)).abs().max())


def test_fitted_erasers_remove_a_planted_leak_from_what_is_published():
    torch.manual_seed(0)
    # a fixed keep pattern (the synthetic presets' selection): the guarantee holds exactly
    model = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior").eval()
    model.set_keep_prior(torch.rand(model.keep_prior.shape))
    clips = _leaky_clips(model)
    before = _group_gap(model, clips, 0.7)
    fitted = fit_erasers(model, clips, [0.7, 1.0, 0.7], RuntimeConfig())
    assert fitted == [1.0, 0.7] and model.eraser_ratios() == [0.7, 1.0]
    after = _group_gap(model, clips, 0.7)
    assert before > 0.01 and after < 0.01 * before
    assert _group_gap(model, clips, 1.0) < 0.01 * before


def test_ratios_with_the_same_keep_counts_share_one_eraser():
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2).eval()
    same = [a for a in (0.69, 0.695) if model.keep_counts(a) == model.keep_counts(0.7)]
    assert same, "the test needs a ratio near 0.7 with the same keep counts"
    fitted = fit_erasers(model, _leaky_clips(model, 24), [0.7, same[0]], RuntimeConfig())
    assert len(fitted) == 1 and len(model.erasers) == 1 and model.erases_at(same[0])


def test_phase_2_trains_through_erasers_refit_in_the_loop():
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior")
    model.set_keep_prior(torch.rand(model.keep_prior.shape))
    clips = _leaky_clips(model)
    cfg = load_experiment("tiny", ["train.phase2_output_rank=2", "train.linear_erasure=true",
                                   "train.erasure_refit_every=5", "train.erasure_refit_clips=500",
                                   "model.keep_ratio=0.7"])
    model.train()
    logged = refit_in_loop(model, clips, cfg, draw=3)
    assert model.training and logged == {"keep_ratios": [1.0, 0.7], "clips": len(clips)}
    # the training-mode (masked) forward publishes through the eraser too, with its gradient
    video = clips.videos[:, 0].float() / 255
    out = model(video, keep_ratio=0.7)
    basis, offset = decoder_basis(model.decode, model.cfg.embed_dim)
    x = coefficients(video_to_tubelets(out.video, model.grid.tubelet), out.keep_mask.reshape(len(video), -1),
                     basis, offset).flatten(1)
    on = clips.attributes[:, 0] == 1
    erased_gap = float((x[on].mean(0) - x[~on].mean(0)).abs().max())
    model.erasers.clear()
    assert erased_gap < 0.2 * _group_gap(model.eval(), clips, 0.7)
    out.video.sum().backward()
    assert model.to_pixels[0].weight.grad is not None
