import numpy as np
import pytest
import torch

from stprivacy.data.synthetic import ACTIONS, ATTRIBUTES, render_clip, synth_preset
from stprivacy.data.synthetic.dataset import render_split
from stprivacy.errors import ConfigError


def test_rendering_is_deterministic_and_seed_dependent():
    cfg = synth_preset("quick")
    a, b, c = render_clip((0, 0, 5), cfg), render_clip((0, 0, 5), cfg), render_clip((0, 0, 6), cfg)
    assert np.array_equal(a.frames, b.frames) and a.action == b.action
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (8, 64, 64, 3) and a.frames.dtype == np.uint8
    assert a.person_mask.shape == (8, 64, 64)


def test_paper_preset_shape():
    clip = render_clip(1, synth_preset("paper"))
    assert clip.frames.shape == (16, 112, 112, 3)


def test_labels_are_balanced_and_independent_by_default():
    cfg = synth_preset("tiny")
    clips = render_split(cfg, 800, seed=1, workers=1, progress=False)
    rates = clips.attributes.float().mean(0).numpy()
    assert np.all(np.abs(rates - 0.5) < 0.07), rates
    counts = np.bincount(clips.actions.numpy(), minlength=len(ACTIONS))
    assert counts.min() > 60
    # independence: the relationship rate hardly depends on the action
    rel = clips.attributes[:, ATTRIBUTES.index("relationship")].numpy()
    per_action = [rel[clips.actions.numpy() == k].mean() for k in range(len(ACTIONS))]
    assert max(per_action) - min(per_action) < 0.3


def test_correlation_knob_ties_attributes_to_actions():
    cfg = synth_preset("tiny")
    cfg.attribute_correlation = 1.0
    clips = render_split(cfg, 800, seed=1, workers=1, progress=False)
    rel = clips.attributes[:, ATTRIBUTES.index("relationship")].numpy()
    acts = clips.actions.numpy()
    two_person = np.isin(acts, [ACTIONS.index("punch"), ACTIONS.index("kick")])
    assert rel[two_person].mean() > 0.8 and rel[~two_person].mean() < 0.5


def test_attributes_change_appearance_and_actions_change_motion():
    cfg = synth_preset("quick")
    base = np.array([0, 1, 0, 0, 0])
    light = render_clip(7, cfg, action=0, attributes=base)
    dark = render_clip(7, cfg, action=0, attributes=np.array([1, 1, 0, 0, 0]))
    # skin colour is appearance alone: the same person mask (same motion), different pixels
    assert np.array_equal(light.person_mask, dark.person_mask)
    assert np.abs(light.frames.astype(int) - dark.frames.astype(int)).max() > 60
    # darker skin lowers the brightness of the skin pixels (hands and face)
    assert dark.frames.mean() < light.frames.mean()
    # the action is motion: another action with the same look moves differently
    jump = render_clip(7, cfg, action=ACTIONS.index("jump"), attributes=base)
    assert not np.array_equal(jump.person_mask, light.person_mask)
    # a second person adds person pixels
    pair = render_clip(7, cfg, action=0, attributes=np.array([0, 1, 0, 0, 1]))
    assert (pair.person_mask > 0).sum() > (light.person_mask > 0).sum()


def test_splits_are_disjoint_streams():
    cfg = synth_preset("tiny")
    tr = render_split(cfg, 4, seed=0, split="train", workers=1, progress=False)
    te = render_split(cfg, 4, seed=0, split="test", workers=1, progress=False)
    assert not any(np.array_equal(tr.videos[i].numpy(), te.videos[i].numpy()) for i in range(4))


def test_bad_config_is_rejected():
    from stprivacy.data.synthetic import SynthConfig

    with pytest.raises(ValueError, match="attribute_correlation"):
        SynthConfig(attribute_correlation=2.0)
    with pytest.raises(ConfigError, match="quick"):
        synth_preset("nope")


def test_twins_are_the_same_clips_with_every_attribute_flipped():
    from stprivacy.data.synthetic.dataset import with_twins
    from stprivacy.data.synthetic.render import clip_labels

    cfg = synth_preset("tiny")
    clips = render_split(cfg, 6, seed=3, split="train", workers=1, progress=False)
    twinned = with_twins(clips, cfg, seed=3, split="train", workers=1, progress=False)
    assert twinned.twins.shape == clips.videos[:, 0].shape and twinned.twins.dtype == clips.videos.dtype
    assert torch.equal(twinned.videos, clips.videos)  # the clips themselves are untouched
    for i in range(6):
        action, labels = clip_labels((3, 0, i), cfg)  # what render_clip draws, without rendering
        assert action == int(clips.actions[i]) and np.array_equal(labels, clips.attributes[i].numpy())
        twin = render_clip((3, 0, i), cfg, attributes=1 - labels).frames
        assert np.array_equal(twinned.twins[i].permute(1, 2, 3, 0).numpy(), twin)
        assert not torch.equal(twinned.twins[i], clips.videos[i, 0])  # another appearance
        # the same scene: the top-left corner, far from the actor and from any bystander, is identical
        assert torch.equal(twinned.twins[i][..., :3, :3], clips.videos[i, 0][..., :3, :3])
    # a subset keeps every clip with its own twin
    sub = twinned.subset(torch.tensor([4, 1]))
    assert torch.equal(sub.twins, twinned.twins[[4, 1]])
