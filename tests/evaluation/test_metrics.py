import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score

from stprivacy.evaluation.metrics import chance_cmap, cmap, per_attribute_ap, privacy_f1, top1_accuracy


@pytest.fixture
def scored():
    rng = np.random.default_rng(3)
    labels = (rng.random((200, 5)) < [0.9, 0.6, 0.9, 0.3, 0.2]).astype(int)
    probs = np.clip(labels * 0.3 + rng.random((200, 5)) * 0.7, 0, 1)
    return probs, labels


def test_cmap_matches_sklearn_macro_average_precision(scored):
    probs, labels = scored
    expected = np.mean([average_precision_score(labels[:, k], probs[:, k]) for k in range(5)]) * 100
    assert cmap(probs, labels) == pytest.approx(expected)
    assert cmap(probs, labels) == pytest.approx(average_precision_score(labels, probs, average="macro") * 100)


def test_f1_matches_sklearn_at_threshold_one_half(scored):
    probs, labels = scored
    expected = f1_score(labels, (probs >= 0.5).astype(int), average="macro", zero_division=0)
    assert privacy_f1(probs, labels) == pytest.approx(expected)


def test_attribute_without_positives_is_left_out():
    labels = np.array([[1, 0], [0, 0], [1, 0]])
    probs = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.1]])
    ap = per_attribute_ap(probs, labels)
    assert ap[0] == pytest.approx(1.0) and np.isnan(ap[1])
    assert cmap(probs, labels) == pytest.approx(100.0)


def test_chance_cmap_is_the_label_prior():
    labels = np.array([[1, 0], [1, 1], [0, 0], [1, 0]])
    assert chance_cmap(labels) == pytest.approx((0.75 + 0.25) / 2 * 100)
    constant = np.full(labels.shape, 0.5)
    assert cmap(constant, labels) == pytest.approx(chance_cmap(labels))


def test_top1():
    assert top1_accuracy(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), np.array([1, 1, 1])) == pytest.approx(
        200 / 3
    )
