"""The closed-form ridge attacker: its features, its statistics, and what it reads."""

import numpy as np
import pytest
import torch

from stprivacy.data.clips import ClipSet
from stprivacy.evaluation.metrics import cmap
from stprivacy.evaluation.ridge import GramStats, cell_mean_features, frame_samples, ridge_attack, ridge_probe


def _clips(n: int, seed: int, leak: float = 60.0, views: int = 1) -> ClipSet:
    """uint8 16 x 16 clips of noise; the top-left 4 x 4 cell is brighter by ``leak`` when attribute 0 is set."""
    gen = torch.Generator().manual_seed(seed)
    attributes = torch.randint(2, (n, 2), generator=gen)
    videos = torch.randint(40, 180, (n, views, 3, 4, 16, 16), generator=gen).float()
    videos[..., :4, :4] += leak * attributes[:, 0].float().view(n, 1, 1, 1, 1, 1)
    return ClipSet(videos.to(torch.uint8), torch.zeros(n, dtype=torch.long), attributes, ["a"], ["p0", "p1"])


def test_cell_features_are_every_frames_cell_means():
    video = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 3, 2, 4, 4)
    feats = cell_mean_features(video, 2)
    assert feats.shape == (2, 2, 3 * 2 * 2)
    assert feats[1, 0, 0].item() == pytest.approx(video[1, 0, 0, :2, :2].mean().item())
    assert feats[0, 1, -1].item() == pytest.approx(video[0, 2, 1, 2:, 2:].mean().item())
    with pytest.raises(ValueError, match="does not divide"):
        cell_mean_features(torch.rand(1, 3, 2, 6, 6), 4)


def test_the_second_moment_block_is_every_cells_mean_square():
    video = torch.rand(2, 3, 2, 4, 4)
    feats = cell_mean_features(video, 2, moments=2)
    assert feats.shape == (2, 2, 2 * 3 * 2 * 2)
    assert torch.equal(feats[..., :12], cell_mean_features(video, 2))
    assert feats[1, 0, 12].item() == pytest.approx((video[1, 0, 0, :2, :2] ** 2).mean().item())
    with pytest.raises(ValueError, match="moments"):
        cell_mean_features(video, 2, moments=0)


def test_statistics_add_up_and_solve_the_ridge_normal_equations():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 6, generator=gen), torch.randn(50, 2, generator=gen)
    whole = GramStats.of(x, y)
    parts = GramStats.of(x[:20], y[:20]) + GramStats.of(x[20:], y[20:])
    assert torch.allclose(whole.gram, parts.gram) and torch.allclose(whole.cross, parts.cross)
    w, mu, mu_y = parts.solve(alpha=0.1)
    xc, yc = (x - x.mean(0)).double(), (y - y.mean(0)).double()
    penalty = 0.1 * (xc.T @ xc).diagonal().mean()
    assert torch.allclose(w, torch.linalg.solve(xc.T @ xc + penalty * torch.eye(6, dtype=torch.float64), xc.T @ yc))
    assert torch.allclose(mu, x.double().mean(0)) and torch.allclose(mu_y, y.double().mean(0))


def test_frame_samples_repeat_each_clips_targets_for_its_frames():
    x, y = frame_samples(torch.rand(3, 3, 4, 8, 8), torch.tensor([[1, 0], [0, 1], [1, 1]]), 2)
    assert x.shape == (12, 12) and y.shape == (12, 2)
    assert y[:4].tolist() == [[1.0, -1.0]] * 4 and y[8:].tolist() == [[1.0, 1.0]] * 4


def test_the_phase3_attacker_reads_a_planted_cell_on_unseen_clips_from_every_view():
    train, test = _clips(200, 0, views=2), _clips(200, 1, views=3)
    probs = ridge_attack(train, test, cells=4)
    assert probs.shape == (200, 2) and ((probs > 0) & (probs < 1)).all()
    aps = [100 * float(a) for a in __import__("sklearn.metrics", fromlist=["x"]).average_precision_score(
        test.attributes.numpy(), probs, average=None)]
    assert aps[0] > 95 and aps[1] < 70  # attribute 1 is noise: its AP stays near its prior
    assert cmap(probs, test.attributes.numpy()) == pytest.approx(np.mean(aps), abs=1e-6)


def test_the_probe_reads_the_planted_cell_and_not_a_texture_inside_cells():
    clips = _clips(200, 2, leak=0.0)
    videos = clips.videos[:, 0].float() / 255
    videos[:, 1, :, :4, :4] += 0.1 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(2, 2) * (
        clips.attributes[:, 1].float().view(-1, 1, 1, 1))  # a zero-mean checkerboard inside a cell
    videos[:, 0, :, 4:8, 4:8] += 0.3 * clips.attributes[:, 0].float().view(-1, 1, 1, 1)
    aps = ridge_probe(videos, clips.attributes, cells=4)
    assert aps[0] > 95
    assert aps[1] < 100 * clips.attributes[:, 1].float().mean().item() + 15
    # the cells' second moments see the checkerboard's contrast, which their means average away
    assert ridge_probe(videos, clips.attributes, cells=4, moments=2)[1] > 80  # 16 noisy pixels a cell


def test_every_training_view_counts():
    train = _clips(60, 3, views=2)
    one_view = ClipSet(train.videos[:, :1].contiguous(), train.actions, train.attributes, ["a"], ["p0", "p1"])
    both = ridge_attack(train, _clips(40, 4), cells=4)
    first = ridge_attack(one_view, _clips(40, 4), cells=4)
    assert not np.allclose(both, first)  # the second view's frames changed the fit
