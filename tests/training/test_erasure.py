"""Fitting the linear erasers after phase 2 (training/erasure.py) and publishing through them."""

import pytest
import torch

from stprivacy.config import load_experiment
from stprivacy.data.clips import ClipSet
from stprivacy.layers.tubelets import video_to_tubelets
from stprivacy.models import STPrivacy
from stprivacy.models.erasure import coefficients, decoder_basis
from stprivacy.runtime import RuntimeConfig
from stprivacy.training.erasure import (
    erasure_readings,
    fit_erasers,
    fit_second_order_guard,
    linear_leak,
    quadratic_features,
    refit_in_loop,
    tubelet_pairs,
)


def _leaky_clips(model: STPrivacy, n: int = 96, seed: int = 3) -> ClipSet:
    """Random clips whose first attribute brightens the whole clip: a leak any linear reader finds."""
    g = torch.Generator().manual_seed(seed)
    c = model.cfg
    attrs = (torch.rand(n, 2, generator=g) < 0.5).long()
    video = torch.rand(n, 3, c.num_frames, c.img_size, c.img_size, generator=g) * 0.6
    video = video + 0.35 * attrs[:, 0].float().view(n, 1, 1, 1, 1)
    return ClipSet((video * 255).round().to(torch.uint8), torch.randint(0, 3, (n,), generator=g), attrs,
                   ("a", "b", "c"), ("bright", "noise"))


def _prior_model() -> STPrivacy:
    """The tiny anonymizer at rank 2 with a fixed (random) keep pattern, as the synthetic presets publish: an
    eraser's guarantee holds exactly there."""
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior").eval()
    model.set_keep_prior(torch.rand(model.keep_prior.shape))
    return model


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


def _spread_leak(n: int = 1200, seed: int = 0):
    """Coefficients of 4 tubelets x 2 whose group means are equal but whose spread follows attribute 0 (what a
    linear eraser leaves and a reader of squares finds), plus an 'action' level in the last tubelet."""
    g = torch.Generator().manual_seed(seed)
    attrs = (torch.rand(n, 2, generator=g) < 0.5).double()
    actions = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 8, generator=g, dtype=torch.float64)
    x[:, :2] *= (1 + 1.0 * attrs[:, :1])  # tubelet 0: wider when attribute 0 is on
    x[:, 6] += 2.0 * actions  # tubelet 3: the action
    return x, attrs, actions


def test_tubelet_pairs_are_the_coefficients_of_one_tubelet():
    first, second = tubelet_pairs(torch.tensor([0, 1, 4, 5, 7]), rank=2)  # tubelet 3 has one live coefficient
    assert list(zip(first.tolist(), second.tolist(), strict=True)) == [(0, 1), (2, 3)]


def test_a_second_order_guard_removes_a_spread_leak_and_keeps_the_action():
    x, attrs, actions = _spread_leak()
    pairs = tubelet_pairs(torch.arange(8), rank=2)
    before = float(linear_leak(quadratic_features((x - x.mean(0)) / x.std(0), pairs), attrs))
    guard = fit_second_order_guard(x, attrs, pairs, distortion=0.1)
    out = guard(x)
    after = float(linear_leak(quadratic_features((out - out.mean(0)) / out.std(0), pairs), attrs))
    held_out, held_attrs, held_actions = _spread_leak(seed=1)  # and on clips it was not fitted on
    held = guard(held_out)
    held_before = float(linear_leak(quadratic_features((held_out - x.mean(0)) / x.std(0), pairs), held_attrs))
    held_after = float(linear_leak(quadratic_features((held - out.mean(0)) / out.std(0), pairs), held_attrs))
    # (a reader fitted in sample on 20 features of 1,200 clips explains about 0.008 of pure noise)
    assert before > 0.05 and after < 0.1 * before and held_after < 0.5 * held_before
    # the action level passes: the class means of its coordinate stay apart by what they were
    means = torch.stack([held[held_actions == k, 6].mean() for k in range(3)])
    assert ((means[1:] - means[:-1]) > 1.5).all()
    # deterministic, and an unfitted guard is the identity
    assert torch.equal(fit_second_order_guard(x, attrs, pairs, distortion=0.1)(x), out)


def test_a_guarded_eraser_is_saved_and_rebuilt_with_its_guard():
    model = _prior_model()
    clips = _leaky_clips(model)
    fit_erasers(model, clips, [0.7], RuntimeConfig(), second_order=True, distortion=0.1)
    eraser = next(iter(model.erasers.values()))
    assert eraser.guard is not None
    fresh = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior")
    fresh.load_state_dict(model.state_dict(), strict=True)
    # frozen like the fitted one, so the instruments can read a loaded run's erasers
    assert not any(p.requires_grad for p in fresh.erasers.parameters())
    readings = erasure_readings(fresh, clips, RuntimeConfig())
    assert {"val_linear_after_a0.7", "val_linear_after_quadratic_a0.7"} <= set(readings)
    video = clips.videos[:4, 0].float() / 255
    assert torch.allclose(fresh.eval().anonymize(video, 0.7)[0], model.anonymize(video, 0.7)[0], atol=1e-6)
    unguarded = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior").eval()
    unguarded.load_state_dict(model.state_dict())
    unguarded.erasers[next(iter(model.erasers))].guard = None
    assert (unguarded.anonymize(video, 0.7)[0] - model.anonymize(video, 0.7)[0]).abs().max() > 1e-4


def test_a_guard_over_all_products_removes_a_leak_across_tubelets_that_a_tubelet_guard_leaves():
    from stprivacy.training.erasure import guard_pairs

    g = torch.Generator().manual_seed(2)
    n = 1500
    attrs = (torch.rand(n, 1, generator=g) < 0.5).double()
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    sign = 2 * attrs[:, 0] - 1
    x[:, 2] = 0.8 * sign * x[:, 0] + 0.6 * x[:, 2]  # tubelets 0 and 1 move together or against, by the attribute
    live = torch.arange(6)
    every = guard_pairs(live, rank=2, products="all")
    assert len(every[0]) == 15 and len(guard_pairs(live, rank=2)[0]) == 3

    def leak(v):
        return float(linear_leak(quadratic_features((v - v.mean(0)) / v.std(0), every), attrs))

    within = fit_second_order_guard(x, attrs, guard_pairs(live, 2), distortion=0.1)(x)
    across = fit_second_order_guard(x, attrs, every, distortion=0.1)(x)
    assert leak(x) > 0.05 and leak(within) > 0.9 * leak(x) and leak(across) < 0.02 * leak(x)


def test_the_product_reader_reads_what_an_eraser_leaves_on_clips_it_was_not_fitted_on():
    from stprivacy.training.erasure import product_readings

    model = _prior_model()
    fit, val = _leaky_clips(model, 160, seed=3), _leaky_clips(model, 160, seed=4)
    noise = torch.randint(0, 2, fit.attributes.shape, generator=torch.Generator().manual_seed(5))
    decoy = ClipSet(fit.videos, fit.actions, noise, fit.action_names, fit.attribute_names)
    fit_erasers(model, decoy, [0.7], RuntimeConfig())  # erases labels that mean nothing: the brightness leak stays
    readings = product_readings(model, fit, val, RuntimeConfig())
    left = readings["val_products_after_a0.7"]
    assert readings["val_mlp_after_a0.7"] > 55  # the MLP reads the brightness leak the decoy eraser left
    fit_erasers(model, fit, [0.7], RuntimeConfig(), second_order=True, products="all")
    erased = product_readings(model, fit, val, RuntimeConfig())["val_products_after_a0.7"]
    assert left > 58 and erased < left - 10  # the mean of a readable attribute and a noise one (50)


def test_principal_axes_give_the_same_scores_whatever_basis_the_decoder_reports():
    from stprivacy.training.erasure import principal_axes

    g = torch.Generator().manual_seed(0)
    live = torch.tensor([0, 1, 2, 3, 6])  # positions 0 and 1 whole, position 3 one coefficient
    x = torch.randn(800, 5, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0, 2.0, 0.5, 1.0],
                                                                              dtype=torch.float64)
    turn = torch.eye(5, dtype=torch.float64)  # the same pixels in another basis of the decoder's range
    angle = torch.tensor(0.7, dtype=torch.float64)
    turn[:2, :2] = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    scores = x @ principal_axes(x, live, rank=2)
    turned = (x @ turn) @ principal_axes(x @ turn, live, rank=2)
    assert torch.allclose(scores.abs(), turned.abs(), atol=1e-8)  # up to each axis' sign
    within = torch.cov(scores[:, :2].T)
    assert abs(float(within[0, 1])) < 1e-8 and within[0, 0] > within[1, 1]  # decorrelated, largest first
    axes = principal_axes(x, live, rank=2)
    assert float(axes[:2, 2:].abs().sum()) == 0 and torch.allclose(axes.T @ axes, torch.eye(5, dtype=torch.float64))


def test_the_product_reader_reads_the_coefficients_the_fit_kept_as_it_would_decode_them():
    from stprivacy.training.erasure import product_readings

    model = _prior_model()
    fit, val = _leaky_clips(model, 96, seed=3), _leaky_clips(model, 96, seed=4)
    kept = {}
    assert fit_erasers(model, fit, [0.7, 1.0], RuntimeConfig(), keep=kept) == [1.0, 0.7]
    assert sorted(kept) == [0.7, 1.0] and kept[0.7].shape[0] == len(fit) * fit.views
    readings = product_readings(model, fit, val, RuntimeConfig(), kept)
    assert "val_mlp_after_a0.7" in readings and readings == product_readings(model, fit, val, RuntimeConfig())


def test_a_guard_only_eraser_erases_no_direction_and_is_saved_and_rebuilt():
    model = _prior_model()
    clips = _leaky_clips(model)
    kept = {}
    with pytest.raises(ValueError, match="needs its second-order guard"):
        fit_erasers(model, clips, [0.7], RuntimeConfig(), guard_only=(0.7,))
    fit_erasers(model, clips, [0.7], RuntimeConfig(), second_order=True, keep=kept, guard_only=(0.7,))
    eraser = next(iter(model.erasers.values()))
    live = kept[0.7].flatten(1)[:, eraser.live].double()
    assert eraser.left.shape[1] == 0 and torch.equal(eraser.correct(live), live)  # no linear correction
    guarded = eraser.guard(live)

    def leak(v):  # what a linear reader explains of the attributes: the brightness leak is a mean shift
        return float(linear_leak((v - v.mean(0)) / v.std(0), clips.attributes.double()))

    assert leak(guarded) < 0.5 * leak(live)  # the guard alone takes it out of what it publishes
    fresh = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior")
    fresh.load_state_dict(model.state_dict(), strict=True)
    video = clips.videos[:4, 0].float() / 255
    assert torch.allclose(fresh.eval().anonymize(video, 0.7)[0], model.anonymize(video, 0.7)[0], atol=1e-6)


def test_publication_noise_is_fresh_at_every_call_of_the_fitted_spread_and_survives_a_reload():
    model = _prior_model()
    clips = _leaky_clips(model)
    kept = {}
    fit_erasers(model, clips, [0.7, 1.0], RuntimeConfig(), second_order=True, keep=kept, noise={0.7: 0.5})
    noisy = model.erasers[next(k for k in model.erasers if model.erasers[k].noise.any())]
    quiet = [e for e in model.erasers.values() if e is not noisy]
    assert len(quiet) == 1 and not quiet[0].noise.any()  # a = 1 was not named: no noise there
    c = kept[0.7]
    corrected = noisy.correct(c.flatten(1)[:, noisy.live].double())
    assert torch.allclose(noisy.noise, 0.5 * corrected.std(0))
    quiet_noise, noisy.noise = noisy.noise, torch.zeros_like(noisy.noise)
    clean = noisy.erase_coefficients(c).flatten(1)
    noisy.noise = quiet_noise
    first, second = (noisy.erase_coefficients(c).flatten(1) for _ in range(2))
    assert not torch.equal(first, second)  # a new draw each time
    spread = (first - clean)[:, noisy.live].std(0).double()
    assert torch.allclose(spread, noisy.noise, rtol=0.35)  # 96 clips: the draw's spread within sampling error
    dead = torch.ones(first.shape[1], dtype=torch.bool)
    dead[noisy.live] = False
    assert torch.equal(first[:, dead], c.flatten(1)[:, dead])  # positions no clip published stay as they were

    again = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior").eval()
    again.load_state_dict(model.state_dict())
    assert set(again.erasers) == set(model.erasers)  # by key: a reload may build them in another order
    assert all(torch.equal(model.erasers[k].noise, again.erasers[k].noise) for k in model.erasers)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith(".noise")}  # saved before the option
    again = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2, selection="prior").eval()
    again.load_state_dict(old)
    assert len(again.erasers) == 2 and not any(e.noise.any() for e in again.erasers.values())


def test_a_run_adds_publication_noise_only_at_the_ratios_it_names():
    from stprivacy.training.erasure import fit_run_erasers

    cfg = load_experiment("tiny", ["model.output_rank=2", "train.linear_erasure=true",
                                   "train.erasure_keep_ratios=[0.7,1.0]", "train.erasure_noise=0.3",
                                   "train.erasure_noise_keep_ratios=[0.7]", "runtime.progress=false"])
    torch.manual_seed(0)
    model = STPrivacy(cfg.model, num_classes=3).eval()
    fit_run_erasers(model, _leaky_clips(model, 24), cfg)
    by_ratio = {round(float(e.keep_ratio), 6): bool(e.noise.any()) for e in model.erasers.values()}
    assert by_ratio == {0.7: True, 1.0: False}
