"""Phase 2's attacker-free privacy term: random appearance features, the queue, and what its gradient does."""

import pytest
import torch

from stprivacy.training.appearance import AppearanceMatch, draw_weights, random_frame_features


def _clips(n: int, tone: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Grey clips with random brightness; a 'hand' patch whose colour is shifted by ``tone`` (one per clip)."""
    video = torch.rand(n, 1, 1, 1, 1, generator=gen).expand(n, 3, 4, 16, 16).clone() * 0.5 + 0.25
    video[:, :, :, 6:10, 6:10] += tone.view(n, 1, 1, 1, 1) * torch.tensor([0.3, 0.1, -0.2]).view(1, 3, 1, 1, 1)
    return video


def test_features_shape_and_weights_are_reproducible():
    w1 = draw_weights((4, 8), torch.Generator().manual_seed(3))
    w2 = draw_weights((4, 8), torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(w1, w2, strict=True))
    feats = random_frame_features(torch.rand(2, 3, 4, 16, 16), w1)
    assert feats.shape == (2, 2 * (4 + 8))
    with pytest.raises(ValueError, match="B x 3 x T"):
        random_frame_features(torch.rand(2, 4, 16, 16), w1)


def test_the_term_sees_a_colour_attribute_and_its_gradient_removes_it():
    gen = torch.Generator().manual_seed(0)
    z = torch.randint(2, (32, 1), generator=gen)
    # an "anonymizer" with one parameter: how much of the attribute's colour it lets through
    leak = torch.tensor(1.0, requires_grad=True)
    base = _clips(32, torch.zeros(32), gen)
    shift = _clips(32, z[:, 0].float(), torch.Generator().manual_seed(1)) - _clips(
        32, torch.zeros(32), torch.Generator().manual_seed(1))
    match = AppearanceMatch((8, 16), queue=64, redraw_every=1000)
    start = match(base + shift, z).item()
    match.reset(0)
    null = match(base, z).item()
    assert start > 10 * max(null, 1e-6)  # the term reads the colour patch...
    opt = torch.optim.SGD([leak], lr=0.5)
    for _ in range(30):
        match.reset(0)
        loss = match(base + leak * shift, z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(leak.item()) < 0.2  # ...and descending it erases the patch's dependence on the attribute


def test_queue_is_bounded_and_emptied_when_the_weights_are_redrawn():
    match = AppearanceMatch((4,), queue=10, redraw_every=3)
    z = torch.randint(2, (4, 5))
    first = [w.clone() for w in match.weights]
    for _ in range(3):
        match(torch.rand(4, 3, 2, 8, 8), z)
    assert sum(len(q) for _, q in match.queue) <= 10 and len(match.queue) == 2  # 12 clips seen, 8 kept
    match(torch.rand(4, 3, 2, 8, 8), z)  # the fourth batch draws new weights
    assert len(match.queue) == 1 and not torch.equal(first[0], match.weights[0])
    match.reset(0)
    assert torch.equal(first[0], match.weights[0]) and match.queue == []  # reset(seed) is reproducible
