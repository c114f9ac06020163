"""The sparsifier learns to keep the tubelets that carry the action (the tiny preset, seconds on a CPU).

Clips of static noise in which one 8 x 8 cell (a tubelet's spatial extent, at a random position per clip) carries
the class: it flickers between black and white in one of two phases (the two classes). Nothing else in the clip
says anything about the class, so a selector that keeps the action must keep that cell. Random choices give
coverage 1.0.
"""

import pytest
import torch

from stprivacy.config import load_experiment
from stprivacy.data.clips import ClipSet
from stprivacy.evaluation.instruments import actor_coverage
from stprivacy.models import STPrivacy
from stprivacy.training.phase1 import train_phase1
from stprivacy.training.run_dir import RunDir


def region_clips(n: int, seed: int) -> ClipSet:
    gen = torch.Generator().manual_seed(seed)
    videos = (torch.rand(n, 3, 1, 32, 32, generator=gen) * 0.6 + 0.2).expand(-1, -1, 8, -1, -1).clone()
    actions = torch.randint(4, (n,), generator=gen)
    masks = torch.zeros(n, 8, 32, 32)
    t = torch.arange(8).float()
    for i in range(n):
        y, x = (int(v) * 8 for v in torch.randint(4, (2,), generator=gen))
        level = ((t + float(actions[i] % 2)) % 2).clamp(0.02, 0.98)  # black-white-... or white-black-...
        colour = torch.tensor([1.0, 1.0, 1.0] if actions[i] < 2 else [1.0, 0.1, 0.1])  # grey or red flicker
        videos[i, :, :, y:y + 8, x:x + 8] = (colour.view(3, 1) * level.view(1, 8)).view(3, 8, 1, 1)
        masks[i, :, y:y + 8, x:x + 8] = 1.0
    return ClipSet((videos * 255).round().to(torch.uint8), actions, torch.zeros(n, 5, dtype=torch.long),
                   ("grey_even", "grey_odd", "red_even", "red_odd"), tuple(f"a{k}" for k in range(5)),
                   actor_masks=(masks * 255).to(torch.uint8))


def test_selector_keeps_the_region_that_carries_the_action(tmp_path):
    # One selection stage: with several, a tubelet kept at stage 1 hands its content to the others before a later
    # stage drops it (measured on these clips: the head at 100 % while the final mask kept the cell 0 % of the
    # time), so the final mask of a multi-stage model need not be an actor detector. Four classes: the keep/drop
    # bit of the cell alone cannot tell them apart, so the cell's own pixels must be kept.
    cfg = load_experiment("tiny", ["train.phase1_epochs=5", "train.lr=0.003", "train.batch_size=16",
                                   "model.selection_points=[1]", "model.keep_ratio=0.4", "model.gumbel_tau=0.5",
                                   "evaluate.keep_ratios=[0.4]"])
    train, val = region_clips(256, 0), region_clips(96, 1)
    torch.manual_seed(0)
    model = STPrivacy(cfg.model, num_classes=4)
    before = actor_coverage(model, val, 0.4, cfg.runtime).coverage
    run = RunDir(tmp_path / "run")
    run.create(cfg)
    train_phase1(model, train, cfg, run, val)
    after = actor_coverage(model, val, 0.4, cfg.runtime)
    # one cell of 16 per slice is the action; at a = 0.4 the stage keeps 6, so the oracle is 16 / 6 = 2.67
    assert after.oracle == pytest.approx(16 / 6)
    assert after.coverage > 2.0 and after.coverage > before + 0.5, (before, after)
    logged = [e for e in run.read_log() if e["event"] == "epoch"]
    assert len(logged) == 5 and all("val_coverage_a0.4" in e and "val_head_top1" in e for e in logged)
