"""Phase 2's closed-form linear attacker: its features, its out-of-sample reading, and what its gradient does."""

import pytest
import torch

from stprivacy.evaluation.ridge import GramStats, cell_mean_features, frame_samples
from stprivacy.training.linear_attacker import RidgeAttacker, margin


def _batch(gen: torch.Generator, leak: torch.Tensor | float, n: int = 16):
    """Noisy 8 x 8 clips whose top-left 4 x 4 cell is brighter by ``leak`` when attribute 0 is set (attribute 1
    is noise): a linear reader of the 2 x 2 cell means finds attribute 0 and nothing of attribute 1."""
    z = torch.randint(2, (n, 2), generator=gen)
    video = torch.rand(n, 3, 2, 8, 8, generator=gen) * 0.5 + 0.25
    bump = torch.zeros(1, 1, 1, 8, 8)
    bump[..., :4, :4] = 1.0
    return video + leak * z[:, :1].float().view(n, 1, 1, 1, 1) * bump, z


def test_margin_is_the_labelled_score_gap_in_units_of_the_spread_and_skips_one_class_columns():
    y = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, 1.0]])
    score = torch.tensor([[3.0, 1.0], [1.0, 2.0], [5.0, 3.0], [-1.0, 4.0]])
    m = margin(score, y, torch.tensor([2.0, 1.0]))
    assert m[0].item() == pytest.approx((4.0 - 0.0) / 2.0) and m[1].item() == 0.0  # one class: says nothing
    assert margin(-score, y, torch.tensor([2.0, 1.0]))[0].item() == pytest.approx(-2.0)  # signed


def test_the_attacker_reads_only_once_its_buffer_holds_enough_batches():
    gen = torch.Generator().manual_seed(0)
    attacker = RidgeAttacker(cells=2, buffer=8, alpha=1.0, min_batches=3, window=1)
    readings = [attacker(*_batch(gen, 0.3)).item() for _ in range(4)]
    assert readings[:3] == [0.0, 0.0, 0.0]  # fewer than min_batches buffered: no reading, no gradient
    assert readings[3] > 0.5  # then the planted attribute is read out of sample
    assert len(attacker.stats) == 4
    attacker.reset()
    assert len(attacker.stats) == 0 and attacker.weights() is None


def test_the_reading_is_of_the_attribute_not_of_the_noise():
    gen = torch.Generator().manual_seed(1)
    attacker = RidgeAttacker(cells=2, buffer=16, alpha=1.0, min_batches=8, window=1)
    for _ in range(8):
        attacker(*_batch(gen, 0.3))
    video, z = _batch(gen, 0.3, n=64)
    feats = cell_mean_features(video, 2).reshape(64 * 2, -1)
    w, mu, spread = attacker.weights()
    m = margin((feats - mu.float()) @ w.float(), 2.0 * z.float().repeat_interleave(2, 0) - 1, spread.float())
    assert m[0] > 1.0 and abs(m[1]) < 0.5


def test_descending_the_reading_removes_the_leak():
    gen = torch.Generator().manual_seed(2)
    leak = torch.tensor(0.3, requires_grad=True)  # an "anonymizer" with one parameter: what it lets through
    opt = torch.optim.SGD([leak], lr=0.002)
    attacker = RidgeAttacker(cells=2, buffer=8, alpha=1.0, min_batches=6, window=2)
    for _ in range(6):
        attacker(*_batch(gen, leak.detach()))
    first, path = None, []
    for _ in range(120):
        loss = attacker(*_batch(gen, leak))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append(leak.item())
    assert first > 0.5  # the squared margin of a planted leak, in units of the score's spread
    # the attacker is refit each step on the new outputs, and the leak settles near zero instead of overshooting
    tail = [abs(v) for v in path[-40:]]
    assert sum(tail) / len(tail) < 0.05 and max(tail) < 0.15


def _stats(gen: torch.Generator, leak: float, batches: int) -> GramStats:
    parts = [GramStats.of(*frame_samples(*_batch(gen, leak), 2)) for _ in range(batches)]
    return sum(parts[1:], parts[0])


def test_refit_mode_holds_the_ridge_solved_on_the_given_statistics_and_ignores_the_buffer():
    gen = torch.Generator().manual_seed(3)
    attacker = RidgeAttacker(cells=2, buffer=8, alpha=1.0, min_batches=3, window=1)
    held_out = attacker.refit(_stats(gen, 0.3, 6), _stats(gen, 0.3, 2))
    assert held_out[0] > 1.0 and abs(held_out[1]) < 0.5  # the planted attribute, out of sample; not the noise
    video, z = _batch(gen, 0.3)
    reading = attacker(video, z)
    assert len(attacker.stats) == 0  # nothing buffered: the ridge changes only at the next refit
    w, mu, spread, _ = attacker.fixed
    now = margin(
        (cell_mean_features(video, 2).reshape(32, -1) - mu.float()) @ w.float(),
        2.0 * z.float().repeat_interleave(2, 0) - 1, spread.float())
    assert reading.item() == pytest.approx((now * held_out.float()).mean().item(), rel=1e-5)
    assert reading.item() > 0.5
    # a refit on outputs without the leak: the held-out margin, and with it the loss's scale, falls to noise
    quiet = attacker.refit(_stats(gen, 0.0, 6), _stats(gen, 0.0, 2))
    assert quiet.abs().max() < 0.5
    attacker.reset()
    assert attacker.fixed is None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        RidgeAttacker(cells=0)
    with pytest.raises(ValueError):
        RidgeAttacker(buffer=4, min_batches=8)
    with pytest.raises(ValueError):
        RidgeAttacker(min_batches=4, window=4)  # the ridge needs batches older than the window
