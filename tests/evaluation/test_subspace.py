"""The subspace attacker: each tubelet's principal components, and every product of two of them."""

import numpy as np
import pytest
import torch

from stprivacy.data.clips import ClipSet, to_float
from stprivacy.evaluation.metrics import per_attribute_ap
from stprivacy.evaluation.ridge import ridge_attack
from stprivacy.evaluation.subspace import subspace_attack, tubelet_components, tubelet_scores
from stprivacy.layers.tubelets import video_to_tubelets

TUBELET = (2, 8, 8)


def _paint(coef: torch.Tensor) -> torch.Tensor:
    """``n x 8 x 2`` numbers -> uint8 ``n x 3 x 4 x 16 x 16`` clips painted like a rank-2 decoder's output: every
    2 x 8 x 8 tubelet is mid-grey plus two fixed pixel patterns (one pair per position) times its two numbers."""
    n = len(coef)
    patterns = torch.randn(8, 2, 3 * 2 * 8 * 8, generator=torch.Generator().manual_seed(99))  # same for all splits
    patterns = patterns / patterns.norm(dim=-1, keepdim=True) * 40
    tubelets = 128 + torch.einsum("nsr,srd->nsd", coef, patterns)
    # the inverse of video_to_tubelets for 2 slices x 2 x 2 positions of 2 x 8 x 8 pixels
    video = tubelets.reshape(n, 2, 2, 2, 3, 2, 8, 8).permute(0, 4, 1, 5, 2, 6, 3, 7).reshape(n, 3, 4, 16, 16)
    return video.round().clamp(0, 255).to(torch.uint8)


def _rank2_clips(n: int, seed: int) -> ClipSet:
    """Attribute 0 is the sign of the product of the first numbers of two *different* tubelets (only a reader of
    products across tubelets sees it: each number alone is symmetric, and so is every function of one tubelet);
    attribute 1 is independent noise."""
    gen = torch.Generator().manual_seed(seed)
    coef = torch.randn(n, 8, 2, generator=gen)
    attributes = torch.stack([(coef[:, 0, 0] * coef[:, 5, 0] > 0).long(), torch.randint(2, (n,), generator=gen)], 1)
    return ClipSet(_paint(coef), torch.zeros(n, dtype=torch.long), attributes, ["a"], ["cross", "noise"])


def _skewed_clips(n: int, seed: int) -> ClipSet:
    """Every number has mean 0 and variance 1 whatever the attribute, and every two are independent, so no
    function of degree 2 reads it: the attribute is the sign of their skew (a centred exponential, or its mirror)."""
    gen = torch.Generator().manual_seed(seed)
    attributes = torch.randint(2, (n, 1), generator=gen)
    draw = -torch.log(torch.rand(n, 8, 2, generator=gen)) - 1  # exponential(1) - 1: mean 0, variance 1, skew 2
    coef = draw * (2 * attributes.view(n, 1, 1) - 1).float()
    return ClipSet(_paint(coef), torch.zeros(n, dtype=torch.long), attributes, ["a"], ["skew"])


def test_components_span_each_positions_patterns():
    clips = _rank2_clips(300, 0)
    mean, directions = tubelet_components(clips, TUBELET, 2)
    assert mean.shape == (8, 3 * 2 * 8 * 8) and directions.shape == (8, 3 * 2 * 8 * 8, 2)
    scores, index = tubelet_scores(clips, mean, directions, TUBELET)
    assert scores.shape == (300, 16) and torch.equal(index, torch.arange(300))
    # rank 2 published + rounding: two components per position hold nearly all of each tubelet's variation
    centred = (video_to_tubelets(to_float(clips.videos[:, 0]), TUBELET) - mean).double()
    rebuilt = torch.einsum("nsr,sdr->nsd", scores.view(300, 8, 2), directions.double())
    assert float(((centred - rebuilt) ** 2).sum() / (centred ** 2).sum()) < 0.01


def test_it_reads_a_product_across_tubelets_that_the_ridge_cannot():
    train, test = _rank2_clips(1200, 1), _rank2_clips(400, 2)
    labels = test.attributes.numpy()
    subspace = per_attribute_ap(subspace_attack(train, test, TUBELET, rank=2), labels) * 100
    ridge = per_attribute_ap(ridge_attack(train, test, cells=8, moments=2), labels) * 100
    assert subspace[0] > 90, subspace
    assert ridge[0] < 65, ridge  # cell moments hold products within a tubelet only
    assert abs(subspace[1] - 50) < 10  # nothing to read: chance (within sampling noise), no made-up signal
    # deterministic: no seed to set
    assert np.array_equal(subspace_attack(train, test, TUBELET, rank=2)[:5], subspace_attack(train, test, TUBELET,
                                                                                              rank=2)[:5])


def test_a_never_shown_position_gives_no_score_and_views_average():
    train, test = _rank2_clips(200, 3), _rank2_clips(50, 4)
    train.videos[:, :, :, :2, :8, :8] = 0  # the first position is always black (dropped): nothing to read there
    probs = subspace_attack(train, test, TUBELET, rank=2, max_scores=64)
    assert probs.shape == (50, 2) and np.all((probs >= 0) & (probs <= 1))  # no NaN from the constant scores
    two_views = ClipSet(test.videos.repeat(1, 2, 1, 1, 1, 1), test.actions, test.attributes)
    assert np.allclose(subspace_attack(train, two_views, TUBELET, rank=2), probs, atol=1e-6)
    with pytest.raises(ValueError, match="does not divide"):
        subspace_attack(train, test, (3, 8, 8))


def test_the_mlp_reader_reads_a_third_moment_that_the_products_cannot():
    train, test = _skewed_clips(1500, 5), _skewed_clips(400, 6)
    labels = test.attributes.numpy()
    quadratic = per_attribute_ap(subspace_attack(train, test, TUBELET, rank=2), labels)[0] * 100
    mlp = per_attribute_ap(subspace_attack(train, test, TUBELET, rank=2, reader="mlp"), labels)[0] * 100
    assert mlp > 85 and quadratic < 65, (mlp, quadratic)
    # and it reads the planted product across tubelets too
    train, test = _rank2_clips(1200, 1), _rank2_clips(400, 2)
    assert per_attribute_ap(subspace_attack(train, test, TUBELET, reader="mlp"), test.attributes.numpy())[0] > 0.9
    with pytest.raises(ValueError, match="reader"):
        subspace_attack(train, test, TUBELET, reader="svm")
