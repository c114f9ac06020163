"""Phase 1's losses: the critic's two views (the decoded output, or the kept tubelets' original pixels)."""

import pytest
import torch
from torch import nn

from stprivacy.config import load_experiment
from stprivacy.errors import ConfigError
from stprivacy.layers.tubelets import kept_pixels
from stprivacy.models import STPrivacy, VideoRecognizer
from stprivacy.training.phase1 import critic_loss, phase1_step, random_keep_mask


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
