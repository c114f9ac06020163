import pytest
import torch

from stprivacy.losses import anonymizer_objective, keep_ratio_loss, masked_reconstruction_loss, privacy_loss, publish


def test_keep_ratio_loss_hand_computed():
    # one clip, two slices of four tokens, two stages with targets 0.5 and 0.25
    d1 = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])  # slice means 0.5, 1.0
    d2 = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]])  # slice means 0.0, 0.25
    expected = ((0.0**2 + 0.5**2) / 2 + (0.25**2 + 0.0**2) / 2) / 2
    assert keep_ratio_loss([d1, d2], [0.5, 0.25]).item() == pytest.approx(expected)


def test_keep_ratio_loss_finite_when_a_slice_is_all_dropped():
    d = torch.zeros(2, 3, 4, requires_grad=True)
    loss = keep_ratio_loss([d], [0.7])
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(d.grad).all()
    assert loss.item() == pytest.approx(0.49)


def test_objective_sign_convention():
    spars, ce, bce = torch.tensor(0.1), torch.tensor(2.0), torch.tensor(0.6)
    assert anonymizer_objective(spars, ce, bce, 0.5, 0.5).item() == pytest.approx(0.1 + 1.0 - 0.3)


def test_privacy_loss_is_multilabel_bce():
    logits = torch.tensor([[0.0, 2.0]])
    z = torch.tensor([[1, 0]])
    expected = (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(2.0)))) / 2
    assert privacy_loss(logits, z).item() == pytest.approx(expected.item(), rel=1e-5)


def test_reconstruction_does_not_train_the_selector():
    # The mask says where to reconstruct; with its gradient the term taught the selector to drop the actor (the
    # tubelets hardest to reconstruct): actor coverage 0.22 in the demo's phase 1.
    out, target = torch.rand(2, 3, 4, 8, 8, requires_grad=True), torch.rand(2, 3, 4, 8, 8)
    keep = torch.ones(2, 2, 4, requires_grad=True)
    masked_reconstruction_loss(out, target, keep, (2, 4, 4)).backward()
    assert keep.grad is None and out.grad.abs().sum() > 0


def test_publish_clamps_and_quantises_with_a_straight_through_gradient():
    v = torch.tensor([-0.5, 0.1234, 0.5, 1.7], requires_grad=True)
    p = publish(v)
    assert torch.equal(p.detach(), torch.tensor([0.0, round(0.1234 * 255) / 255, 128 / 255, 1.0]))
    p.sum().backward()
    assert torch.equal(v.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    # straight through the clamp too: the same published values, and saturated pixels get the gradient
    w = v.detach().clone().requires_grad_(True)
    q = publish(w, straight_through_clamp=True)
    assert torch.equal(q.detach(), p.detach())
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones(4))


def test_attribute_discrepancy_hand_computed_and_blind_to_independent_features():
    from stprivacy.losses import attribute_discrepancy

    z = torch.tensor([[1, 0], [1, 1], [0, 0], [0, 1]])
    # feature 0 follows attribute 0 exactly; feature 1 is the same for every clip
    x = torch.tensor([[1.0, 5.0], [1.0, 5.0], [0.0, 5.0], [0.0, 5.0]], requires_grad=True)
    std0 = torch.tensor([1.0, 1.0, 0.0, 0.0]).std().item()
    # attribute 0: groups differ by 1 in feature 0 (in units of its std), not at all in feature 1;
    # attribute 1: the groups {1, 3} and {0, 2} have the same means
    expected = ((1.0 / std0) ** 2 / 2 + 0.0) / 2
    loss = attribute_discrepancy(x, z)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert x.grad[:, 0].abs().sum() > 0  # the gradient pulls the groups' means together
    # features that do not depend on any attribute give zero; an attribute with a one-clip group is skipped
    assert attribute_discrepancy(torch.ones(4, 3), z).item() == 0.0
    lonely = torch.tensor([[1], [0], [0], [0]])
    assert attribute_discrepancy(x.detach(), lonely).item() == 0.0
    with pytest.raises(ValueError, match="N x D"):
        attribute_discrepancy(torch.ones(4), z)


def test_output_energy_hand_computed_on_kept_tubelets_only():
    from stprivacy.losses import output_energy

    video = torch.full((1, 3, 2, 4, 4), 0.5)
    video[..., :2, :2] = 0.9  # tubelet (slice 0, position 0) is 0.4 from grey; the rest is grey
    video[..., 2:, 2:] = 0.0  # position 3: 0.5 from grey, but dropped
    video.requires_grad_(True)
    keep = torch.tensor([[[1.0, 1.0, 0.0, 0.0]]], requires_grad=True)
    e = output_energy(video, keep, (2, 2, 2))
    assert e.item() == pytest.approx((0.4**2 + 0.0) / 2)
    e.backward()
    assert keep.grad is None or not keep.grad.any()  # the mask says where to measure; it is not trained
    assert output_energy(torch.full_like(video, 0.5), keep, (2, 2, 2)).item() == 0.0


def test_spatial_variation_counts_fine_patterns_not_tubelet_borders():
    from stprivacy.losses import spatial_variation

    flat = torch.zeros(1, 3, 2, 4, 4)
    flat[..., :2, :2] = 1.0  # a constant tubelet beside black ones: no variation inside any tubelet
    keep = torch.ones(1, 1, 4)
    assert spatial_variation(flat, keep, (2, 2, 2)).item() == 0.0
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2  # alternating 0/1 pixels
    video = checker.float().expand(1, 3, 2, 4, 4)
    # inside every 2 x 2 tubelet each horizontal and each vertical neighbour differs by 1
    assert spatial_variation(video, keep, (2, 2, 2)).item() == pytest.approx(2.0)
    assert spatial_variation(video, torch.zeros(1, 1, 4), (2, 2, 2)).item() == 0.0


def test_the_residual_reconstruction_target_is_the_input_as_a_temporal_residual_model_publishes_it():
    from stprivacy.layers.tubelets import residual_video, video_to_tubelets

    torch.manual_seed(0)
    video = torch.rand(2, 3, 8, 16, 16)
    keep = (torch.rand(2, 4, 4) > 0.3).float()
    published = residual_video(video, keep, (2, 8, 8))
    assert masked_reconstruction_loss(published, video, keep, (2, 8, 8), residual=True) == 0
    assert masked_reconstruction_loss(published, video, keep, (2, 8, 8)) > 0.1  # the plain target is the input
    # a still clip publishes flat grey wherever a tubelet is kept
    still = video[:, :, :1].expand_as(video)
    tub = video_to_tubelets(residual_video(still, keep, (2, 8, 8)), (2, 8, 8)).reshape(2, 4, 4, -1)
    torch.testing.assert_close(tub[keep.bool()], torch.full_like(tub[keep.bool()], 0.5))


def test_motion_anchor_is_zero_for_the_input_itself_and_charges_flicker_where_kept():
    from stprivacy.losses import motion_anchor_loss

    torch.manual_seed(0)
    video = torch.rand(2, 3, 4, 16, 16)
    keep = torch.ones(2, 2, 4)  # tubelet 2 x 8 x 8: 2 slices of 2 x 2 positions, all kept
    assert motion_anchor_loss(video, video, keep, (2, 8, 8)).item() == pytest.approx(0.0, abs=1e-7)
    damped = (0.25 + 0.5 * video).requires_grad_(True)  # half the input's changes: too little motion
    loss = motion_anchor_loss(damped, video, keep, (2, 8, 8))
    assert loss.item() > 0.05
    loss.backward()
    assert damped.grad.abs().sum() > 0
    keep[:, :, 0] = 0  # a dropped position does not count, whatever the output does there
    flicker = video.clone()
    flicker[:, :, :, :8, :8] = torch.rand(2, 3, 4, 8, 8)
    assert motion_anchor_loss(flicker, video, keep, (2, 8, 8)).item() == pytest.approx(0.0, abs=1e-7)
