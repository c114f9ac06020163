"""Phase 2's step: one forward pass, the gradients of the paper's two alternating steps."""

import torch

from stprivacy.config import load_experiment
from stprivacy.losses import action_loss, privacy_loss
from stprivacy.models import STPrivacy
from stprivacy.training import distributed
from stprivacy.training.phase2 import Adversaries, anonymizer_step, recognizer_losses


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def test_one_forward_gives_the_gradients_of_the_two_alternating_steps():
    # every frame for the frame CNN (no random subset), so both computations see the same inputs
    cfg = load_experiment("tiny", ["train.privacy_adversaries=[vit,frame]", "train.privacy_ensemble=2",
                                   "frame_attacker.train_frames=0"])
    torch.manual_seed(0)
    f, adv = STPrivacy(cfg.model, num_classes=4).train(), Adversaries(cfg, 4, 5).train()
    batch = {"video": torch.rand(6, 3, 8, 32, 32), "action": torch.randint(4, (6,)),
             "attributes": torch.randint(2, (6, 5))}

    # The paper's two steps: the anonymizer against fixed recognizers, then the recognizers on the fixed output.
    torch.manual_seed(1)  # the same Gumbel noise in both computations
    adv.requires_grad_(False)
    out, losses, _ = anonymizer_step(f, f.stage_ratios(), adv, batch, 0.5, 0.5)
    losses["total"].backward()
    adv.requires_grad_(True)
    video, keep = out.video.detach(), out.keep_mask.detach()
    ce = action_loss(adv.action(video, keep), batch["action"])
    bces = torch.stack([privacy_loss(p(video, keep), batch["attributes"]) for p in adv.privacy])
    rec = recognizer_losses(ce, bces)
    rec["total"].backward()
    expected_f, expected_adv = _grads(f), _grads(adv)
    f.zero_grad(set_to_none=True)
    adv.zero_grad(set_to_none=True)

    torch.manual_seed(1)
    f_losses, rec_losses = distributed.backward_split(
        batch, lambda part: anonymizer_step(f, f.stage_ratios(), adv, part, 0.5, 0.5)[1:], [f], [adv],
        torch.device("cpu"))
    got_f, got_adv = _grads(f), _grads(adv)
    assert set(got_f) == set(expected_f) and len(got_f) > 10
    assert set(got_adv) == set(expected_adv) == {n for n, _ in adv.named_parameters()}
    for expected, got in ((expected_f, got_f), (expected_adv, got_adv)):
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], atol=1e-6, rtol=1e-4, msg=name)
    assert abs(f_losses["total"] - losses["total"].item()) < 1e-5
    assert abs(rec_losses["total"] - rec["total"].item()) < 1e-5
    assert abs(rec_losses["rec_bce_P"] - bces.mean().item()) < 1e-6
