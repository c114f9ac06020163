"""Learning-rate rules: the paper's scaling, the released code's backbone / layer-wise schedule, freezing."""

import pytest
import torch

from stprivacy import pipeline
from stprivacy.config import load_experiment, peak_lr
from stprivacy.errors import ConfigError
from stprivacy.models import STPrivacy, VideoRecognizer, model_preset
from stprivacy.training.optim import make_optimizer, param_groups, trunk_layer, warmup_cosine


def test_paper_lr_rule():
    assert peak_lr(load_experiment("tiny", ["train.lr=null", "train.batch_size=512"]).train) == pytest.approx(1e-3)
    assert peak_lr(load_experiment("tiny", ["train.lr=null", "train.batch_size=128"]).train) == pytest.approx(2.5e-4)
    assert peak_lr(load_experiment("tiny", ["evaluate.lr=null", "evaluate.batch_size=64"]).evaluate) == pytest.approx(
        1.25e-4)


def test_trunk_layers():
    assert trunk_layer("vit.pos_embed", 12) == 0
    assert trunk_layer("vit.embed.proj.weight", 12) == 0
    assert trunk_layer("vit.blocks.0.attn.qkv.weight", 12) == 1
    assert trunk_layer("vit.blocks.11.mlp.fc2.bias", 12) == 12
    assert trunk_layer("vit.norm.weight", 12) == 13
    assert trunk_layer("action.vit.blocks.3.norm1.weight", 12) == 4  # a recognizer inside phase 2's adversaries
    assert trunk_layer("scorers.0.local.weight", 12) is None
    assert trunk_layer("head.weight", 12) is None


def test_backbone_scale_and_layer_decay_give_each_parameter_its_rate():
    model = STPrivacy(model_preset("tiny"), num_classes=4)  # depth 5
    opt = make_optimizer(model, lr=1.0, weight_decay=0.05, backbone_lr_scale=0.1, layer_decay=0.5)
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert rate[id(named["vit.pos_embed"])] == pytest.approx(0.1 * 0.5**6)
    assert rate[id(named["vit.blocks.4.attn.qkv.weight"])] == pytest.approx(0.1 * 0.5)
    assert rate[id(named["vit.norm.weight"])] == pytest.approx(0.1)
    assert rate[id(named["to_pixels.weight"])] == 1.0
    assert all(rate[id(p)] == 1.0 for n, p in named.items() if n.startswith("scorers."))
    assert decay[id(named["vit.pos_embed"])] == 0.0 and decay[id(named["vit.blocks.0.attn.qkv.weight"])] == 0.05
    assert len({id(p) for g in opt.param_groups for p in g["params"]}) == len(named)  # every parameter once
    # the schedule scales each group from its own rate: the ratios stay
    sched = warmup_cosine(opt, total_steps=10, warmup_steps=2)
    for _ in range(5):
        opt.step()
        sched.step()
    now = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert now[id(named["vit.norm.weight"])] / now[id(named["to_pixels.weight"])] == pytest.approx(0.1)


def test_defaults_keep_one_rate_for_everything():
    groups = param_groups(VideoRecognizer(model_preset("tiny"), 3), 0.05)
    assert {g["lr_scale"] for g in groups} == {1.0} and len(groups) == 2


def test_invalid_schedule_options_are_config_errors():
    with pytest.raises(ConfigError, match="backbone_lr_scale"):
        load_experiment("tiny", ["train.backbone_lr_scale=0"])
    with pytest.raises(ConfigError, match="freeze_backbone_epochs"):
        load_experiment("tiny", ["train.freeze_backbone_epochs=-1"])


def test_frozen_backbone_epochs_train_only_the_predictors(tmp_path):
    from stprivacy.data.build import build_datasets
    from stprivacy.training.phase1 import train_phase1

    cfg = load_experiment("tiny", ["train.freeze_backbone_epochs=1", "train.phase1_epochs=1"])
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    run = pipeline.prepare_run(cfg, tmp_path / "run")
    model = STPrivacy(cfg.model, num_classes=len(train.action_names))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_phase1(model, train, cfg, run)
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("vit."))
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("scorers."))
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again for what comes next


def test_compile_option_trains_through_torch_compile(monkeypatch):
    """``runtime.compile`` routes the training forward through ``torch.compile``; with the eager backend (no C++
    compiler needed) the result equals uncompiled training exactly."""
    from stprivacy.data.build import build_datasets
    from stprivacy.training.supervised import FitConfig, fit

    cfg = load_experiment("tiny")
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    compiled = []
    real_compile = torch.compile

    def eager_compile(model, **kw):
        compiled.append(model)
        return real_compile(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    weights = {}
    for flag in (False, True):
        cfg.runtime.compile = flag
        torch.manual_seed(0)
        model = VideoRecognizer(cfg.recognizer, len(train.action_names))
        fit(model, train, "action", FitConfig(epochs=1, batch_size=8), cfg.runtime)
        weights[flag] = model.state_dict()
    assert len(compiled) == 1 and isinstance(compiled[0], VideoRecognizer)
    for k, v in weights[False].items():
        torch.testing.assert_close(weights[True][k], v, msg=k)


def test_fused_adamw_is_used_where_supported_and_updates_like_the_per_parameter_loop():
    torch.manual_seed(0)
    models = [VideoRecognizer(model_preset("tiny"), 3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = make_optimizer(models[0], lr=1e-2, weight_decay=0.05)
    loop = make_optimizer(models[1], lr=1e-2, weight_decay=0.05, fused=False)
    assert fused.defaults["fused"] is (torch.__version__ >= "2.4")  # the CPU kernel exists from torch 2.4
    assert not loop.defaults["fused"]
    video = torch.rand(4, 3, 8, 32, 32)
    for _ in range(3):
        for model, opt in zip(models, (fused, loop), strict=True):
            opt.zero_grad()
            model(video).square().mean().backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)  # Adam steps move weights by ~lr = 1e-2
    assert not torch.equal(models[0].head.weight, VideoRecognizer(model_preset("tiny"), 3).head.weight)


def test_selection_stops_learning_after_phase1_selection_epochs_and_the_rest_trains_on(tmp_path):
    """``phase1_selection_epochs: 1`` over 2 epochs: the second epoch leaves the embedding, the blocks up to the
    last selection and the scorers as the first left them; the later blocks and the head still learn."""
    from stprivacy.data.build import build_datasets
    from stprivacy.training.phase1 import train_phase1

    cfg = load_experiment("tiny", ["train.phase1_selection_epochs=1", "train.phase1_epochs=1"])
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    run = pipeline.prepare_run(cfg, tmp_path / "run")
    model = STPrivacy(cfg.model, num_classes=len(train.action_names))
    train_phase1(model, train, cfg, run)
    after_first = {k: v.clone() for k, v in model.state_dict().items()}
    cfg.train.phase1_epochs = 2  # resume the same run for its second epoch
    train_phase1(model, train, cfg, run)
    after = model.state_dict()
    last = cfg.model.selection_points[-1]
    selection = ("vit.embed.", "vit.pos_embed", "scorers.", *(f"vit.blocks.{i}." for i in range(last)))
    frozen = [k for k in after if k.startswith(selection)]
    rest = [k for k in after if k.startswith(("vit.blocks.", "action_head.")) and k not in frozen]
    assert frozen and rest
    assert all(torch.equal(after[k], after_first[k]) for k in frozen)
    assert any(not torch.equal(after[k], after_first[k]) for k in rest)
    assert all(p.requires_grad for p in model.parameters())  # trainable again for phase 2


def test_a_negative_phase1_selection_epochs_is_a_config_error():
    with pytest.raises(ConfigError, match="phase1_selection_epochs"):
        load_experiment("tiny", ["train.phase1_selection_epochs=-1"])
