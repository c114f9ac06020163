"""Phase 1's losses: the critic's two views (the decoded output, or the kept tubelets' original pixels), and the
keep-pattern min-max."""

import pytest
import torch
from torch import nn

from stprivacy.config import load_experiment
from stprivacy.errors import ConfigError
from stprivacy.evaluation.instruments import keep_pattern_leak
from stprivacy.layers.tubelets import kept_pixels
from stprivacy.models import KeepPatternAttacker, STPrivacy, VideoRecognizer
from stprivacy.models.selection import TokenScorer, topk_keep
from stprivacy.training.phase1 import (
    critic_loss,
    pattern_losses,
    phase1_step,
    random_keep_mask,
)


class SpyCritic(nn.Module):
    """A linear action critic on the mean pixel that remembers the video it was shown."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.fc = nn.Linear(3, classes)
        self.seen: torch.Tensor | None = None

    def forward(self, video, keep_mask):
        self.seen = video
        return self.fc(video.mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("critic_input", ["output", "input"])
def test_the_critic_trains_the_selector_and_only_the_output_critic_trains_the_decoder(critic_input):
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, selection="topk").train()
    critic = SpyCritic()
    batch = {"video": torch.rand(4, 3, 8, 32, 32), "action": torch.tensor([0, 1, 2, 0])}
    losses = phase1_step(model, model.stage_ratios(), model.grid.tubelet, batch, 0.0, critic, 1.0, 0.7,
                         critic_input=critic_input)
    losses["critic"].backward()
    if critic_input == "input":
        mask = (critic.seen.detach() != 0).any(1)  # the black tubelets are the dropped ones
        # kept pixels are the input's (up to the straight-through term's rounding), dropped ones black
        torch.testing.assert_close(critic.seen.detach(), batch["video"] * mask.unsqueeze(1))
        assert 0 < mask.float().mean() < 1
        assert model.to_pixels.weight.grad is None  # the decoder cannot repaint what the critic reads
    else:
        assert model.to_pixels.weight.grad.abs().sum() > 0
    assert sum(p.grad.abs().sum() for p in model.scorers[-1].parameters() if p.grad is not None) > 0


def test_an_unknown_critic_input_is_a_config_error():
    with pytest.raises(ConfigError, match="phase1_critic_input"):
        load_experiment("tiny", ["train.phase1_critic_input=pixels"])


def test_random_keep_mask_keeps_the_same_count_per_slice_at_random_places():
    torch.manual_seed(0)
    mask = torch.zeros(64, 4, 16)
    mask[..., :5] = 1.0
    chance = random_keep_mask(mask)
    assert torch.equal(chance.sum(-1), mask.sum(-1))
    assert chance[..., :5].mean() < 0.5  # not the given positions: uniform would be 5 / 16


def test_input_random_critic_learns_only_from_random_masks_and_the_selector_learns_through_it():
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, selection="topk").train()
    critic = VideoRecognizer(load_experiment("tiny").recognizer, 3).train()
    batch = {"video": torch.rand(4, 3, 8, 32, 32), "action": torch.tensor([0, 1, 2, 0])}
    out = model(batch["video"], keep_ratio=0.7)
    torch.manual_seed(1)
    critic_loss(critic, "input-random", out, batch, model.grid.tubelet).backward()
    together = [p.grad.clone() for p in critic.parameters()]
    assert sum(p.grad.abs().sum() for p in model.scorers[-1].parameters() if p.grad is not None) > 0
    # the critic's gradient is that of the random-mask term alone: the selector's view does not train it
    critic.zero_grad()
    torch.manual_seed(1)
    chance = random_keep_mask(out.keep_mask.detach())
    seen = kept_pixels(batch["video"], chance, model.grid.tubelet)
    torch.nn.functional.cross_entropy(critic(seen, chance), batch["action"]).backward()
    for a, b in zip(together, (p.grad for p in critic.parameters()), strict=True):
        torch.testing.assert_close(a, b)


def test_pattern_losses_train_the_selector_through_the_attacker_and_the_attacker_on_the_detached_mask():
    torch.manual_seed(0)
    model = STPrivacy.from_preset("tiny", num_classes=3, selection="topk").train()
    attacker = KeepPatternAttacker(model.grid.slices, model.grid.tokens_per_slice, 5)
    batch = {"video": torch.rand(4, 3, 8, 32, 32), "action": torch.tensor([0, 1, 2, 0]),
             "attributes": torch.randint(2, (4, 5))}
    losses = phase1_step(model, model.stage_ratios(), model.grid.tubelet, batch, 0.0, keep_ratio=0.7,
                         pattern=attacker, pattern_weight=2.0)
    losses["pattern"].backward()  # the selector's side alone
    assert all(p.grad is None for p in attacker.parameters())
    assert sum(p.grad.abs().sum() for p in model.scorers[-1].parameters() if p.grad is not None) > 0
    model.zero_grad()
    out = model(batch["video"], keep_ratio=0.7)
    hide, read = pattern_losses(attacker, out.keep_mask, batch["attributes"])
    read.backward()  # the attacker's side alone
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.parameters())
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        attacker(out.keep_mask.detach()), batch["attributes"].float())
    torch.testing.assert_close(read, expected)
    assert hide >= 0  # a confusion: zero only when every prediction is 1/2
    # given the published (noise-free) masks, the attacker learns from those instead
    published = random_keep_mask(out.keep_mask.detach())
    _, read = pattern_losses(attacker, out.keep_mask, batch["attributes"], published)
    torch.testing.assert_close(read, torch.nn.functional.binary_cross_entropy_with_logits(
        attacker(published), batch["attributes"].float()))


def test_a_negative_pattern_weight_or_an_unknown_mask_source_is_a_config_error():
    with pytest.raises(ConfigError, match="phase1_pattern_adversary"):
        load_experiment("tiny", ["train.phase1_pattern_adversary=-1"])
    with pytest.raises(ConfigError, match="phase1_pattern_masks"):
        load_experiment("tiny", ["train.phase1_pattern_masks=clean"])


def salient_tokens(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Token features of 2 slices x 16 tokens in which a salient patch sits at tokens 0-3 of each slice when the
    attribute is 1 and at tokens 12-15 when it is 0 (a fixed direction, not a constant: LayerNorm would erase it)."""
    z = torch.randint(2, (n, 1), generator=gen)
    pos = torch.arange(32) % 16
    salient = torch.where(z.bool(), pos < 4, pos >= 12)
    return torch.randn(n, 32, 24, generator=gen) * 0.3 + salient.unsqueeze(-1) * torch.linspace(-1, 1, 24), z


def test_the_pattern_min_max_makes_a_telling_selection_tell_a_fresh_attacker_less():
    """A scorer taught to keep the salient patch publishes the attribute in its keep pattern (a fresh linear probe
    reads it at 100 % AP); the min-max against a co-trained pattern attacker lowers what a fresh probe reads."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    scorer, attacker = TokenScorer(24), KeepPatternAttacker(2, 16, 1)
    everything = torch.ones(64, 32)

    def top5(x):  # inference: the 5 best-scored tokens of each slice
        idx = scorer(x, torch.ones(x.shape[:2]), 2)[..., 0].reshape(-1, 2, 16).topk(5, -1).indices
        return torch.zeros(len(x), 2, 16).scatter_(-1, idx, 1.0)

    warm = torch.optim.Adam(scorer.parameters(), 1e-2)
    for _ in range(30):
        x, _ = salient_tokens(64, gen)
        target = ((x * torch.linspace(-1, 1, 24)).mean(-1) > 0.15).float()
        loss = nn.functional.binary_cross_entropy(scorer(x, everything, 2)[..., 0].exp(), target)
        warm.zero_grad()
        loss.backward()
        warm.step()
    held_x, held_z = salient_tokens(400, gen)
    with torch.no_grad():
        before = keep_pattern_leak(top5(held_x), held_z)
    opts = [torch.optim.Adam(m.parameters(), 1e-2) for m in (scorer, attacker)]
    for _ in range(150):
        x, z = salient_tokens(64, gen)
        keep = topk_keep(scorer(x, everything, 2), everything, 2, 5).reshape(-1, 2, 16)
        hide, read = pattern_losses(attacker, keep, z)
        for opt in opts:
            opt.zero_grad()
        (hide + read).backward()
        for opt in opts:
            opt.step()
    with torch.no_grad():
        after = keep_pattern_leak(top5(held_x), held_z)
    assert before > 95 and after < before - 15, (before, after)
