import pytest
import torch
from torch import nn

from stprivacy.layers.tubelets import keep_mask_pixels
from stprivacy.models import STPrivacy
from stprivacy.models.erasure import LinearEraser, coefficients, decoder_basis, eraser_key


def _rank2_decoder(dim: int = 6, pixels: int = 10) -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(dim, 2), nn.Linear(2, pixels))


def test_decoder_basis_reconstructs_every_decoded_tubelet():
    decoder = _rank2_decoder()
    basis, offset = decoder_basis(decoder, 6)
    assert basis.shape == (10, 2)
    assert torch.allclose(basis.T @ basis, torch.eye(2), atol=1e-5)
    feats = torch.randn(50, 6)
    with torch.no_grad():
        decoded = decoder(feats)
    c = (decoded - offset) @ basis
    assert torch.allclose(offset + c @ basis.T, decoded, atol=1e-5)


def test_decoder_basis_refuses_a_full_rank_decoder():
    with pytest.raises(ValueError, match="rank"):
        decoder_basis(nn.Linear(32, 64), 32)


def _planted(n: int = 600, slices: int = 3, seed: int = 0):
    """Coefficients (N x S x 2) with an attribute-dependent shift in two coordinates, and an 'action' coordinate
    that does not depend on it."""
    g = torch.Generator().manual_seed(seed)
    attrs = (torch.rand(n, 2, generator=g) < 0.5).float()
    c = torch.randn(n, slices, 2, generator=g)
    c[:, 0, 0] += 1.5 * attrs[:, 0]
    c[:, 1, 1] -= 1.0 * attrs[:, 1]
    return c, attrs


def test_an_eraser_equalises_the_attribute_groups_means_and_keeps_the_rest():
    c, attrs = _planted()
    basis, offset = torch.eye(2), torch.zeros(2)
    eraser = LinearEraser.fit(basis, offset, c, attrs, 0.7)
    keep = torch.ones(len(c), 3)
    erased = eraser(c, keep).reshape(len(c), -1)  # with an identity basis the tubelets are the coefficients
    flat = c.reshape(len(c), -1)
    for k in range(2):
        on, off = attrs[:, k] == 1, attrs[:, k] == 0
        before = (flat[on].mean(0) - flat[off].mean(0)).abs().max()
        after = (erased[on].mean(0) - erased[off].mean(0)).abs().max()
        assert before > 0.8 and after < 1e-4
    # the coordinate that carries no attribute barely moves
    assert (erased[:, 4] - flat[:, 4]).abs().mean() < 0.1


def test_an_eraser_keeps_dropped_tubelets_at_zero():
    c, attrs = _planted()
    eraser = LinearEraser.fit(torch.eye(2), torch.zeros(2), c, attrs, 0.7)
    keep = torch.ones(len(c), 3)
    keep[:, 2] = 0
    out = eraser(c * keep.unsqueeze(-1), keep)
    assert torch.equal(out[:, 2], torch.zeros_like(out[:, 2]))
    with pytest.raises(ValueError, match="tubelets"):
        eraser(torch.zeros(4, 5, 2), torch.ones(4, 5))


def test_coefficients_are_zero_where_dropped():
    basis, offset = torch.eye(3)[:, :2], torch.tensor([0.5, 0.5, 0.5])
    tubelets = torch.full((1, 2, 3), 0.9)
    keep = torch.tensor([[1.0, 0.0]])
    c = coefficients(tubelets, keep, basis, offset)
    assert torch.allclose(c[0, 0], torch.tensor([0.4, 0.4])) and torch.equal(c[0, 1], torch.zeros(2))


def _tiny_rank2() -> STPrivacy:
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2).eval()
    return model


def test_the_anonymizer_publishes_through_its_eraser_at_the_ratio_it_serves():
    model = _tiny_rank2()
    video = torch.rand(6, 3, model.cfg.num_frames, model.cfg.img_size, model.cfg.img_size)
    plain, _ = model.anonymize(video, 0.7)
    tubelets, keep = model.decoded_tubelets(video, 0.7)
    basis, offset = decoder_basis(model.decode, model.cfg.embed_dim)
    x = coefficients(tubelets, keep.reshape(6, -1), basis, offset)
    attrs = torch.tensor([[0.0], [1.0], [0.0], [1.0], [0.0], [1.0]])
    model.set_eraser(0.7, LinearEraser.fit(basis, offset, x, attrs, 0.7))
    erased, mask = model.anonymize(video, 0.7)
    assert not torch.allclose(erased, plain)
    # dropped tubelets stay exactly zero, kept ones are painted
    kept = keep_mask_pixels(mask, model.grid)
    assert (mask == 0).any() and torch.equal(erased * (1 - kept), torch.zeros_like(erased))
    assert model.erases_at(0.7) and not model.erases_at(0.4)
    # a ratio no eraser serves is published as the anonymizer paints it
    assert torch.equal(model.anonymize(video, 0.4)[0], _tiny_rank2().anonymize(video, 0.4)[0])
    assert eraser_key(model.keep_counts(0.7)) in model.erasers


def test_a_saved_eraser_loads_into_a_fresh_anonymizer():
    model = _tiny_rank2()
    basis, offset = decoder_basis(model.decode, model.cfg.embed_dim)
    s = model.grid.num_tokens
    x = torch.randn(40, s, basis.shape[1])
    model.set_eraser(0.7, LinearEraser.fit(basis, offset, x, (torch.rand(40, 2) < 0.5).float(), 0.7))
    fresh = STPrivacy.from_preset("tiny", num_classes=3, output_rank=2)
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert fresh.eraser_ratios() == [0.7]
    video = torch.rand(2, 3, model.cfg.num_frames, model.cfg.img_size, model.cfg.img_size)
    assert torch.allclose(fresh.eval().anonymize(video, 0.7)[0], model.anonymize(video, 0.7)[0])
