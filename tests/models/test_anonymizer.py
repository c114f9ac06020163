import pytest
import torch

from stprivacy import STPrivacy
from stprivacy.losses import keep_ratio_loss


def tiny(num_classes=5, **kw):
    return STPrivacy.from_preset("tiny", num_classes=num_classes, **kw)


def test_vit_s_keeps_34_24_16_of_49_and_zeroes_dropped_tubelets():
    model = STPrivacy.from_preset("vit-s").eval()
    video = torch.rand(1, 3, 16, 112, 112)
    out = model._forward_topk(video, 0.7)
    counts = [d.sum(-1) for d in out.decisions]
    assert [int(c.unique().item()) for c in counts] == [34, 24, 16]
    assert out.keep_mask.shape == (1, 8, 49) and int(out.keep_mask.sum()) == 128
    # dropped tubelets are exactly zero, kept ones are not
    from stprivacy.layers import video_to_tubelets

    tub = video_to_tubelets(out.video, (2, 16, 16)).reshape(1, 8, 49, -1)
    dropped = out.keep_mask == 0
    assert torch.count_nonzero(tub[dropped]) == 0
    assert (tub[~dropped].abs().sum(-1) > 0).all()


def test_anonymize_api_returns_video_and_mask_of_input_shape():
    model = tiny().eval()
    video = torch.rand(3, 3, 8, 32, 32)
    anon, mask = model.anonymize(video, keep_ratio=0.5)
    assert anon.shape == video.shape and mask.shape == (3, 4, 16)
    assert (mask.sum(-1) == 2).all()  # int(16 * 0.5^3) = 2


@pytest.mark.parametrize("attention", ["global", "temporal", "temporal-until-last"])
def test_topk_inference_equals_masked_forward_with_the_same_hard_masks(attention):
    model = tiny(pre_selection_attention=attention).eval()
    video = torch.rand(2, 3, 8, 32, 32)
    topk = model._forward_topk(video, 0.7)
    masked = model._forward_masked(video, topk.decisions)
    torch.testing.assert_close(masked.video, topk.video, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(masked.action_logits, topk.action_logits, atol=1e-5, rtol=1e-4)


def _perturb_dropped_after_first_selection(model, masks):
    """Forward pre-hook on the first selected block adding noise to the tokens dropped at stage 1."""
    first = model.cfg.selection_points[0]
    dropped = masks[0].reshape(masks[0].shape[0], -1) == 0

    def hook(_module, args):
        x, keep = args
        x = x.clone()
        x[dropped] += 50 * torch.randn_like(x[dropped])
        return (x, keep)

    return model.vit.blocks[first].register_forward_pre_hook(hook)


def test_dropped_token_state_never_reaches_kept_outputs_in_training_mode():
    model = tiny().train()
    video = torch.rand(2, 3, 8, 32, 32)
    masks = model.eval()._forward_topk(video, 0.7).decisions
    model.train()
    ref = model(video, stage_masks=masks)
    handle = _perturb_dropped_after_first_selection(model, masks)
    try:
        pert = model(video, stage_masks=masks)
    finally:
        handle.remove()
    torch.testing.assert_close(pert.video, ref.video)
    torch.testing.assert_close(pert.action_logits, ref.action_logits)


def test_training_forward_uses_gumbel_masks_and_returns_each_stage():
    model = tiny().train()
    out = model(torch.rand(4, 3, 8, 32, 32))
    assert len(out.decisions) == 3
    for prev, cur in zip(out.decisions, out.decisions[1:], strict=False):
        assert ((cur <= prev) | (prev == 0)).all()  # a dropped token stays dropped
        assert torch.equal(cur * prev, cur)
    assert set(out.keep_mask.unique().tolist()) <= {0.0, 1.0}
    from stprivacy.layers import video_to_tubelets

    tub = video_to_tubelets(out.video, (2, 8, 8)).reshape(4, 4, 16, -1)
    assert torch.count_nonzero(tub[out.keep_mask == 0]) == 0


def test_keep_logits_are_the_scores_each_stage_ranked_and_are_given_with_given_decisions_too():
    model = tiny(selection="topk", gumbel_tau=1e-9).train()  # no noise to speak of: the top-k of the logits
    with torch.no_grad():  # scores well apart (at initialisation they differ by 1e-5, near float ties)
        for scorer in model.scorers:
            scorer.mlp[-1].weight.normal_()
    video = torch.rand(2, 3, 8, 32, 32)
    out = model(video, keep_ratio=0.5)
    assert len(out.keep_logits) == len(out.decisions) == 3
    live = torch.ones_like(out.keep_mask)
    for logits, decided in zip(out.keep_logits, out.decisions, strict=True):
        assert logits.shape == decided.shape
        k = int(decided[0, 0].sum())
        # every kept token outscores every token of its slice that was still competing and was dropped
        kept_min = logits.masked_fill(decided == 0, float("inf")).min(-1).values
        lost = (live == 1) & (decided == 0)
        dropped_max = logits.masked_fill(~lost, float("-inf")).max(-1).values
        assert k > 0 and (kept_min > dropped_max).all()
        live = decided
    again = model(video, stage_masks=[d.detach() for d in out.decisions], keep_ratio=0.5)
    for mine, theirs in zip(out.keep_logits, again.keep_logits, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-5)  # the same decisions, the same scores
    assert model.eval()(video, keep_ratio=0.5).keep_logits == []


@pytest.mark.parametrize("attention", ["global", "temporal-until-last"])
def test_straight_through_sends_gradient_into_every_scorer(attention):
    model = tiny(pre_selection_attention=attention).train()
    out = model(torch.rand(4, 3, 8, 32, 32))
    out.video.pow(2).mean().backward()
    for i, scorer in enumerate(model.scorers):
        grads = [p.grad for p in scorer.parameters()]
        assert all(g is not None for g in grads), f"scorer {i} has parameters without gradient"
        assert sum(g.abs().sum() for g in grads) > 0, f"scorer {i} got zero gradient"


def test_every_parameter_gets_a_gradient_in_phase1():
    model = tiny().train()
    out = model(torch.rand(4, 3, 8, 32, 32))
    loss = out.video.mean() + out.action_logits.logsumexp(-1).mean()
    loss = loss + keep_ratio_loss(out.decisions, model.stage_ratios())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_fully_dropped_slice_stays_finite():
    model = tiny().train()
    video = torch.rand(2, 3, 8, 32, 32)
    masks = [torch.ones(2, 4, 16) for _ in range(3)]
    for m in masks:
        m[:, 1] = 0  # the whole second slice is dropped from the first stage on
    out = model(video, stage_masks=masks)
    assert torch.isfinite(out.video).all() and torch.isfinite(out.action_logits).all()
    log_probs = model.scorers[1](torch.randn(2, 64, 48), masks[0].reshape(2, 64), 4)
    assert torch.isfinite(log_probs).all()


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_invalid_keep_ratios_are_rejected(bad):
    model = tiny().eval()
    with pytest.raises(ValueError, match="keep_ratio"):
        model.anonymize(torch.rand(1, 3, 8, 32, 32), keep_ratio=bad)


def test_keep_ratio_leaving_no_token_in_a_slice_is_rejected():
    model = tiny().eval()
    with pytest.raises(ValueError, match="keeps no token"):
        model.anonymize(torch.rand(1, 3, 8, 32, 32), keep_ratio=0.3)  # 16 * 0.3^3 = 0.43


def test_wrong_shapes_and_dtypes_are_rejected():
    model = tiny().eval()
    with pytest.raises(ValueError, match="B x 3 x 8 x 32 x 32"):
        model.anonymize(torch.rand(1, 3, 16, 32, 32))
    with pytest.raises(ValueError, match="B x 3 x 8 x 32 x 32"):
        model.anonymize(torch.rand(3, 8, 32, 32))
    with pytest.raises(TypeError, match="floating-point"):
        model.anonymize(torch.zeros(1, 3, 8, 32, 32, dtype=torch.uint8))


def test_keep_all_ratio_keeps_every_token():
    model = tiny().eval()
    _, mask = model.anonymize(torch.rand(1, 3, 8, 32, 32), keep_ratio=1.0)
    assert bool(mask.all())


@pytest.mark.parametrize("train", [True, False])
def test_output_block_paints_each_tubelet_in_constant_blocks(train):
    from stprivacy.models.baselines.fixed import pixelate

    torch.manual_seed(0)
    model = tiny(output_block=4).train(train)
    video = torch.rand(2, 3, 8, 32, 32)
    out = model(video, keep_ratio=0.7)
    frames = out.video.transpose(1, 2).reshape(-1, 3, 32, 32)
    # every 4 x 4 block is one value, so block means leave the output unchanged; it is not constant per tubelet
    torch.testing.assert_close(pixelate(frames, 4), frames)
    assert not torch.equal(pixelate(frames, 8), frames)
    # dropped tubelets stay exactly zero (blocks never straddle two tubelets)
    from stprivacy.layers import video_to_tubelets

    tub = video_to_tubelets(out.video, (2, 8, 8)).reshape(2, 4, 16, -1)
    assert torch.count_nonzero(tub[out.keep_mask == 0]) == 0
    assert model.to_pixels.out_features == 3 * 2 * 2 * 2


def test_output_block_must_divide_the_patch():
    with pytest.raises(ValueError, match="output_block"):
        tiny(output_block=3)


@pytest.mark.parametrize("train", [True, False])
def test_output_rank_paints_every_tubelet_from_r_learned_patterns(train):
    from stprivacy.layers import video_to_tubelets

    torch.manual_seed(0)
    model = tiny(output_rank=2).train(train)
    out = model(torch.rand(3, 3, 8, 32, 32), keep_ratio=0.7)
    tub = video_to_tubelets(out.video, (2, 8, 8)).reshape(3, 4, 16, -1)[out.keep_mask == 1]
    assert len(tub) > 2
    # every kept tubelet is bias + a combination of the same 2 patterns: rank 2 around the bias
    centred = tub - model.to_pixels[1].bias.detach()
    assert torch.linalg.matrix_rank(centred, atol=1e-4).item() == 2
    full = tiny().train(train)
    tub_full = video_to_tubelets(full(torch.rand(3, 3, 8, 32, 32), keep_ratio=0.7).video, (2, 8, 8))
    assert torch.linalg.matrix_rank(tub_full.reshape(-1, tub_full.shape[-1]), atol=1e-4).item() > 2
    with pytest.raises(ValueError, match="output_rank"):
        tiny(output_rank=-1)


def _last_scorer_input_change(attention: str, position: int) -> torch.Tensor:
    """Which tokens' features at the last selection change (B x L x N bool) when the input pixels of one
    spatial position change in every frame."""
    torch.manual_seed(0)
    model = tiny(pre_selection_attention=attention).eval()
    seen = []
    handle = model.scorers[-1].register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    video = torch.rand(1, 3, 8, 32, 32)
    perturbed = video.clone()
    row, col = divmod(position, 4)  # tiny: 4 x 4 tubelets of 8 x 8 pixels per slice
    perturbed[..., row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 1.0
    model._forward_topk(video, 1.0)  # a = 1 keeps every token in place: each position stays comparable
    model._forward_topk(perturbed, 1.0)
    handle.remove()
    return ((seen[0] - seen[1]).abs().amax(-1) > 1e-6).reshape(1, 4, 16)


def test_temporal_until_last_keeps_each_position_to_itself_up_to_the_last_selection():
    changed = _last_scorer_input_change("temporal-until-last", position=5)
    assert changed[..., 5].all()
    assert not changed[..., [p for p in range(16) if p != 5]].any()
    # the paper's global blocks spread one position's change over every token before the last selection
    assert _last_scorer_input_change("global", position=5).all()
    # temporal attention before the first selection only: the blocks between selections still mix positions
    assert _last_scorer_input_change("temporal", position=5)[..., [0, 15]].all()


def test_unknown_pre_selection_attention_is_rejected():
    with pytest.raises(ValueError, match="pre_selection_attention"):
        tiny(pre_selection_attention="spatial")


@pytest.mark.parametrize("train", [True, False])
def test_temporal_residual_publishes_grey_plus_change_at_every_position(train):
    from stprivacy.layers import video_to_tubelets

    torch.manual_seed(0)
    plain, residual = tiny(), tiny(temporal_residual=True)
    residual.load_state_dict(plain.state_dict())
    plain.train(train), residual.train(train)
    video = torch.rand(2, 3, 8, 32, 32)
    torch.manual_seed(1)
    base = plain(video, keep_ratio=0.7)
    torch.manual_seed(1)  # the same selection
    out = residual(video, keep_ratio=0.7)
    assert torch.equal(out.keep_mask, base.keep_mask)
    tub = video_to_tubelets(out.video, (2, 8, 8)).reshape(2, 4, 16, -1)
    ref = video_to_tubelets(base.video, (2, 8, 8)).reshape(2, 4, 16, -1)
    keep = out.keep_mask.unsqueeze(-1)
    assert torch.count_nonzero(tub[out.keep_mask == 0]) == 0  # dropped tubelets stay black
    # at every position, the kept tubelets average to grey: no still appearance is left
    count = keep.sum(dim=1)
    mean = (tub * keep).sum(dim=1) / count.clamp_min(1)
    torch.testing.assert_close(mean[count.expand_as(mean) > 0], torch.full_like(mean[count.expand_as(mean) > 0], 0.5))
    # ... and each kept tubelet differs from its position's others as the plain decoder's did
    ref_mean = (ref * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True).clamp_min(1)
    kept = out.keep_mask.bool()
    torch.testing.assert_close(tub[kept], (ref - ref_mean + 0.5)[kept], atol=1e-5, rtol=1e-5)


def test_temporal_residual_holds_in_topk_inference_as_in_the_masked_forward():
    model = tiny(temporal_residual=True).eval()
    video = torch.rand(2, 3, 8, 32, 32)
    topk = model._forward_topk(video, 0.7)
    masked = model._forward_masked(video, topk.decisions)
    torch.testing.assert_close(masked.video, topk.video, atol=1e-5, rtol=1e-4)


def test_prior_selection_keeps_the_prior_top_positions_for_every_clip_in_training_and_inference():
    model = tiny(selection="prior")
    torch.manual_seed(0)
    prior = torch.rand(4, 16)
    model.set_keep_prior(prior)
    video = torch.rand(3, 3, 8, 32, 32)
    k = model.stage_ratios(0.5)  # 16 -> 8 -> 4 -> 2 tokens per slice
    expected = torch.zeros(4, 16).scatter_(-1, prior.topk(int(16 * k[-1]), dim=-1).indices, 1.0)
    trained = model.train()(video, keep_ratio=0.5).keep_mask
    deployed = model.eval()(video, keep_ratio=0.5).keep_mask
    assert torch.equal(trained, expected.expand(3, -1, -1)) and torch.equal(deployed, trained)
    with pytest.raises(ValueError, match="4, 16"):
        model.set_keep_prior(torch.rand(16))
    with pytest.raises(ValueError, match="prior"):
        tiny().set_keep_prior(prior)
