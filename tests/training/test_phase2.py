"""Phase 2's update: the anonymizer step against frozen recognizers, then the recognizers on the detached output."""

import copy
import math

import pytest
import torch

from stprivacy.config import load_experiment
from stprivacy.losses import action_loss, confusion_loss, keep_ratio_loss, privacy_loss
from stprivacy.models import STPrivacy
from stprivacy.training.optim import make_optimizer
from stprivacy.training.phase2 import Adversaries, frozen, train_step


def _setup(overrides=()):
    # every frame for the frame CNN (no random subset), so both computations see the same inputs
    cfg = load_experiment("tiny", ["train.privacy_adversaries=[vit,frame]", "train.privacy_ensemble=2",
                                   "frame_attacker.train_frames=0", *overrides])
    torch.manual_seed(0)
    f, adv = STPrivacy(cfg.model, num_classes=4).train(), Adversaries(cfg, 4, 5).train()
    batch = {"video": torch.rand(6, 3, 8, 32, 32), "action": torch.randint(4, (6,)),
             "attributes": torch.randint(2, (6, 5))}
    return cfg, f, adv, batch


def _opts(f, adv):
    return {"anonymizer": make_optimizer(f, 1e-3, 0.05), "adversaries": make_optimizer(adv, 1e-3, 0.05)}


@pytest.mark.parametrize("objective", ["neg_bce", "confusion"])
def test_train_step_is_the_two_alternating_steps_written_out(objective):
    cfg, f, adv, batch = _setup([f"train.privacy_objective={objective}", "train.adversary_steps=2"])
    f2, adv2 = copy.deepcopy(f), copy.deepcopy(adv)

    torch.manual_seed(1)  # the same Gumbel noise in both computations
    train_step(f, f, adv, batch, cfg, _opts(f, adv), 0.7)

    # by hand: the paper's anonymizer step with the recognizers fixed, then two recognizer steps on the output
    opts = _opts(f2, adv2)
    torch.manual_seed(1)
    out = f2(batch["video"])
    adv2.requires_grad_(False)
    logits = [p(out.video, out.keep_mask) for p in adv2.privacy]
    bces = torch.stack([privacy_loss(z, batch["attributes"]) for z in logits])
    privacy = (torch.stack([confusion_loss(z) for z in logits]).max() if objective == "confusion"
               else -bces.min())
    total = (keep_ratio_loss(out.decisions, f2.stage_ratios()) + 0.5 * action_loss(
        adv2.action(out.video, out.keep_mask), batch["action"]) + 0.5 * privacy)
    total.backward()
    adv2.requires_grad_(True)
    assert all(p.grad is None for p in adv2.parameters())  # step 1 trains the anonymizer only
    opts["anonymizer"].step()
    video, keep = out.video.detach(), out.keep_mask.detach()
    f_grads = [p.grad.clone() for p in f2.parameters() if p.grad is not None]
    for _ in range(2):
        opts["adversaries"].zero_grad(set_to_none=True)
        rec = action_loss(adv2.action(video, keep), batch["action"]) + sum(
            privacy_loss(p(video, keep), batch["attributes"]) for p in adv2.privacy)
        rec.backward()
        opts["adversaries"].step()
    # step 2 reads the detached output: the anonymizer's gradients are untouched by it
    assert all(torch.equal(a, p.grad) for a, p in zip(f_grads, [p for p in f2.parameters() if p.grad is not None],
                                                      strict=True))

    for got, want in ((f, f2), (adv, adv2)):
        for (name, a), b in zip(got.named_parameters(), want.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4, msg=name)
    # the adversaries really moved twice: one step alone would differ
    assert any((a - b).abs().max() > 0 for a, b in zip(adv.parameters(), _setup()[2].parameters(), strict=True))


def test_frozen_blocks_parameter_gradients_but_not_the_flow_through():
    lin = torch.nn.Linear(3, 1)
    x = torch.rand(2, 3, requires_grad=True)
    with frozen(lin):
        lin(x).sum().backward()
    assert lin.weight.grad is None and x.grad is not None and x.grad.abs().sum() > 0
    assert lin.weight.requires_grad


def test_confusion_loss_is_zero_only_at_one_half_and_symmetric():
    assert confusion_loss(torch.zeros(4, 5)).item() == pytest.approx(0.0, abs=1e-7)
    right, wrong = confusion_loss(torch.full((1, 5), 3.0)), confusion_loss(torch.full((1, 5), -3.0))
    assert right.item() > 0.5 and right.item() == pytest.approx(wrong.item())


def test_frozen_selection_keeps_phase_1s_choice_and_trains_the_rest(tmp_path):
    from stprivacy.config import load_experiment
    from stprivacy.data.build import build_datasets
    from stprivacy.models import STPrivacy
    from stprivacy.training.phase2 import train_phase2
    from stprivacy.training.run_dir import RunDir

    cfg = load_experiment("tiny", ["train.phase2_freeze_selection=true"])
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    model = STPrivacy(cfg.model, num_classes=len(train.action_names))
    video = train.videos[:4, 0].float() / 255
    before_mask = model.eval().anonymize(video, 0.7)[1]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = RunDir(tmp_path / "run")
    run.create(cfg)
    model, _ = train_phase2(model, train, cfg, run)
    after = model.state_dict()
    assert torch.equal(model.eval().anonymize(video, 0.7)[1], before_mask)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("scorers.", "vit.embed.")))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("to_pixels"))


def test_privacy_match_adds_its_weighted_term_to_the_anonymizer_objective():
    from stprivacy.training.appearance import AppearanceMatch

    cfg, f, adv, batch = _setup(["train.privacy_match=4.0"])
    plain_cfg = _setup()[0]
    totals = {}
    for name, c, match in (("match", cfg, AppearanceMatch((4, 8))), ("plain", plain_cfg, None)):
        g, a = copy.deepcopy(f), copy.deepcopy(adv)  # both runs start from the same weights
        torch.manual_seed(1)
        totals[name] = train_step(g, g, a, batch, c, _opts(g, a), 0.7, match)
    assert "match" in totals["match"] and "match" not in totals["plain"]
    assert totals["match"]["match"] > 0
    assert totals["match"]["total"] == pytest.approx(totals["plain"]["total"] + 4.0 * totals["match"]["match"],
                                                     rel=1e-4)


def test_privacy_ridge_adds_its_weighted_term_and_learns_from_the_published_view():
    from stprivacy.training.linear_attacker import RidgeAttacker

    cfg, f, adv, batch = _setup(["train.privacy_ridge=4.0", "train.bounded_output=true"])
    plain_cfg = _setup(["train.bounded_output=true"])[0]
    ridge = RidgeAttacker(cells=8, buffer=8, min_batches=2, window=1)
    for _ in range(2):  # two batches buffered: the attacker reads
        ridge(torch.rand(6, 3, 8, 32, 32), batch["attributes"])
    totals = {}
    for name, c, r in (("ridge", cfg, ridge), ("plain", plain_cfg, None)):
        g, a = copy.deepcopy(f), copy.deepcopy(adv)
        torch.manual_seed(1)
        totals[name] = train_step(g, g, a, batch, c, _opts(g, a), 0.7, ridge=r)
    assert "ridge" in totals["ridge"] and "ridge" not in totals["plain"]
    assert totals["ridge"]["ridge"] != 0  # a signed margin: on random clips either sign
    assert totals["ridge"]["total"] == pytest.approx(totals["plain"]["total"] + 4.0 * totals["ridge"]["ridge"],
                                                     rel=1e-4)
    # the step buffered what the recognizers saw: the published view, every pixel on the uint8 grid (a block
    # mean of 16 pixels is then a multiple of 1 / (255 * 16))
    assert len(ridge.stats) == 3
    published_sum = ridge.stats[-1].sum_x * 255 * 16
    assert torch.allclose(published_sum, published_sum.round(), atol=1e-3)


def test_privacy_ridge_refit_solves_the_ridge_on_published_training_clips():
    from stprivacy.data.clips import ClipSet
    from stprivacy.training.linear_attacker import RidgeAttacker
    from stprivacy.training.phase2 import refit_ridge

    cfg = load_experiment("tiny", ["train.privacy_ridge=1.0", "train.privacy_ridge_refit_every=5",
                                   "train.privacy_ridge_refit_clips=12"])
    torch.manual_seed(0)
    f = STPrivacy(cfg.model, num_classes=4).train()
    train = ClipSet(torch.randint(0, 256, (20, 1, 3, 8, 32, 32), dtype=torch.uint8), torch.randint(4, (20,)),
                    torch.randint(2, (20, 5)))
    ridge = RidgeAttacker(cells=4)
    readings = refit_ridge(ridge, f, train, cfg, draw=0)
    assert f.training  # back to training mode after the inference pass
    assert readings["ridge_refit_margin"] >= 0 and ridge.fixed is not None
    # the ridge was fitted on the 72 frames of 9 of the 12 published clips: its feature mean times 72 is a
    # multiple of 1 / (255 * 64) (uint8 pixels averaged over 8 x 8 cells), which the float output would not give
    w, mu, _, held = ridge.fixed
    sums = mu * 72 * 255 * 64
    assert torch.allclose(sums, sums.round(), atol=1e-5)
    assert held.shape == (5,)
    # the same draw picks the same clips: a refit is reproducible
    refit_ridge(ridge, f, train, cfg, draw=0)
    assert torch.equal(ridge.fixed[0], w)
    refit_ridge(ridge, f, train, cfg, draw=1)
    assert not torch.equal(ridge.fixed[0], w)


def test_twin_invariance_adds_the_difference_between_a_clip_and_its_twin_under_the_same_decisions():
    cfg, f, adv, batch = _setup(["train.twin_invariance=5.0", "train.bounded_output=true"])
    plain_cfg = _setup(["train.bounded_output=true"])[0]
    totals = {}
    for name, c, twin in (("same", cfg, batch["video"]), ("other", cfg, torch.rand_like(batch["video"])),
                          ("plain", plain_cfg, None)):
        g, a = copy.deepcopy(f), copy.deepcopy(adv)
        part = dict(batch) if twin is None else {**batch, "twin": twin}
        torch.manual_seed(1)
        totals[name] = train_step(g, g, a, part, c, _opts(g, a), 0.7)
    # a twin identical to its clip publishes the same pixels under the same keep decisions: nothing to pay
    assert totals["same"]["twin"] == 0.0
    assert totals["other"]["twin"] > 0.001
    assert totals["other"]["total"] == pytest.approx(totals["plain"]["total"] + 5.0 * totals["other"]["twin"],
                                                     rel=1e-4)


def test_twin_invariance_needs_the_synthetic_renderer():
    from stprivacy.errors import ConfigError

    with pytest.raises(ConfigError, match="twin"):
        load_experiment("vp-hmdb51", ["train.twin_invariance=1.0"])
    with pytest.raises(ConfigError, match="twin"):
        load_experiment("tiny", ["train.twin_invariance=-1.0"])


def test_privacy_ridge_settings_are_checked():
    from stprivacy.errors import ConfigError

    with pytest.raises(ConfigError, match="privacy_ridge"):
        load_experiment("tiny", ["train.privacy_ridge=1.0", "train.privacy_ridge_buffer=4"])
    with pytest.raises(ConfigError, match="privacy_ridge"):
        load_experiment("tiny", ["train.privacy_ridge=1.0", "train.privacy_ridge_refit_every=-1"])
    with pytest.raises(ConfigError, match="ridge_cells"):
        load_experiment("tiny", ["evaluate.ridge_cells=5"])  # 32 x 32 frames
    with pytest.raises(ConfigError, match="bounded_gradient"):
        load_experiment("tiny", ["train.bounded_gradient=identity"])


def test_refresh_batches_start_at_every_multiple_but_the_first_and_last_refresh_steps():
    from stprivacy.training.phase2 import is_refresh_batch

    cfg = load_experiment("tiny", ["train.privacy_refresh_every=10", "train.privacy_refresh_steps=3"])
    assert [i for i in range(35) if is_refresh_batch(cfg.train, i)] == [10, 11, 12, 20, 21, 22, 30, 31, 32]
    assert not any(is_refresh_batch(load_experiment("tiny").train, i) for i in range(50))  # off by default


@pytest.mark.parametrize("every,steps", [(-1, 1), (5, 0), (5, 5)])
def test_refresh_settings_that_would_stop_the_anonymizer_are_config_errors(every, steps):
    from stprivacy.config import ConfigError

    with pytest.raises(ConfigError, match="privacy_refresh"):
        load_experiment("tiny", [f"train.privacy_refresh_every={every}", f"train.privacy_refresh_steps={steps}"])


def test_refresh_restarts_the_privacy_models_and_their_adam_moments_only():
    from stprivacy.training.phase2 import adversary_step, refresh_privacy

    cfg, f, adv, batch = _setup()
    opts = _opts(f, adv)
    f_before = copy.deepcopy(f.state_dict())
    for _ in range(2):
        adversary_step(f, adv, batch, cfg, opts["adversaries"])
    # an adversary-only step trains the recognizers on the output and leaves the anonymizer as it was
    assert all(torch.equal(f_before[k], v) for k, v in f.state_dict().items())
    assert all(p.grad is None for p in f.parameters())
    trained = copy.deepcopy(adv.privacy.state_dict())
    opt = opts["adversaries"]
    assert all(p in opt.state for p in adv.parameters())
    torch.manual_seed(5)
    refresh_privacy(adv, opt)
    assert not any(p in opt.state for p in adv.privacy.parameters())
    assert all(p in opt.state for p in adv.action.parameters())  # A keeps learning where it was
    fresh = adv.privacy.state_dict()
    changed = [k for k in trained if trained[k].is_floating_point() and not torch.equal(trained[k], fresh[k])]
    assert changed and all(not k.endswith("num_batches_tracked") for k in changed)
    # and the fresh models are a new draw of the initialisation: the same seed gives the same models
    torch.manual_seed(5)
    again = Adversaries(cfg, 4, 5).privacy
    torch.manual_seed(5)
    again.restart()
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), fresh.values(), strict=True))


def test_phase2_with_refreshes_logs_each_one_and_still_trains_the_anonymizer(tmp_path):
    from stprivacy.data.build import build_datasets
    from stprivacy.training.phase2 import train_phase2
    from stprivacy.training.run_dir import RunDir

    # tiny: 32 clips of batch 8 = 4 batches per epoch, 8 in phase 2; refreshes at batches 3 and 6, one step each
    cfg = load_experiment("tiny", ["train.phase2_epochs=2", "train.privacy_refresh_every=3",
                                   "train.privacy_refresh_steps=1"])
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    model = STPrivacy(cfg.model, num_classes=len(train.action_names))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run = RunDir(tmp_path / "run")
    run.create(cfg)
    model, _ = train_phase2(model, train, cfg, run)
    refreshes = [e for e in run.read_log() if e["event"] == "privacy_refresh"]
    assert [(e["epoch"], e["batch"]) for e in refreshes] == [(1, 3), (2, 6)]
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_epoch_restarts_go_through_the_refresh_restart(tmp_path, monkeypatch):
    """``privacy_restart_every`` restarts P as a refresh does (Adam moments cleared, weights broadcast)."""
    from stprivacy.data.build import build_datasets
    from stprivacy.training import phase2
    from stprivacy.training.run_dir import RunDir

    calls = []
    real = phase2.refresh_privacy
    monkeypatch.setattr(phase2, "refresh_privacy", lambda adv, opt: calls.append(opt) or real(adv, opt))
    cfg = load_experiment("tiny", ["train.phase2_epochs=3", "train.privacy_restart_every=2"])
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    run = RunDir(tmp_path / "run")
    run.create(cfg)
    _, adv = phase2.train_phase2(STPrivacy(cfg.model, num_classes=len(train.action_names)), train, cfg, run)
    assert [e["epoch"] for e in run.read_log() if e["event"] == "privacy_restart"] == [3]
    assert len(calls) == 1 and isinstance(calls[0], torch.optim.Optimizer)


def test_anonymizer_every_n_steps_the_anonymizer_on_every_nth_batch_only(tmp_path, monkeypatch):
    from stprivacy.config import ConfigError
    from stprivacy.data.build import build_datasets
    from stprivacy.training import phase2
    from stprivacy.training.run_dir import RunDir

    calls = []
    for name in ("train_step", "adversary_step"):
        real = getattr(phase2, name)
        monkeypatch.setattr(phase2, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    # tiny: 4 batches per epoch, 8 in phase 2: the anonymizer on batches 0, 3, 6
    cfg = load_experiment("tiny", ["train.phase2_epochs=2", "train.anonymizer_every=3"])
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    run = RunDir(tmp_path / "run")
    run.create(cfg)
    phase2.train_phase2(STPrivacy(cfg.model, num_classes=len(train.action_names)), train, cfg, run)
    assert calls == ["train_step", "adversary_step", "adversary_step"] * 2 + ["train_step", "adversary_step"]
    with pytest.raises(ConfigError, match="anonymizer_every"):
        load_experiment("tiny", ["train.anonymizer_every=0"])


def test_anonymizer_ema_returns_and_checkpoints_the_average_of_the_iterates(tmp_path):
    from stprivacy.config import ConfigError
    from stprivacy.data.build import build_datasets
    from stprivacy.training.checkpoint import load_modules
    from stprivacy.training.phase2 import train_phase2, weight_average
    from stprivacy.training.run_dir import RunDir

    cfg = load_experiment("tiny", ["train.phase2_epochs=2", "train.anonymizer_ema=0.5"])
    train, _, _ = build_datasets(cfg.data, cfg.seed, progress=False)
    model = STPrivacy(cfg.model, num_classes=len(train.action_names))
    run = RunDir(tmp_path / "run")
    run.create(cfg)
    returned, _ = train_phase2(model, train, cfg, run)
    last = STPrivacy(cfg.model, num_classes=len(train.action_names))
    average = weight_average(STPrivacy(cfg.model, num_classes=len(train.action_names)), 0.5)
    load_modules(run.checkpoint("phase2"), {"anonymizer": last, "anonymizer_average": average})
    assert int(average.n_averaged) == 8  # one update per anonymizer step: 4 batches x 2 epochs
    got = returned.state_dict()
    assert all(torch.equal(got[k], v) for k, v in average.module.state_dict().items())
    assert not all(torch.equal(got[k], v) for k, v in last.state_dict().items())  # not the last iterate
    with pytest.raises(ConfigError, match="anonymizer_ema"):
        load_experiment("tiny", ["train.anonymizer_ema=1.0"])


def test_lowpass_privacy_views_cannot_see_patterns_inside_a_block_and_train_in_both_steps():
    cfg, f, adv, batch = _setup(["train.adversary_lowpass=2"])
    views = adv.privacy_views()
    assert len(views) == len(adv.privacy) == 4 and all(v.member is p for v, p in zip(views, adv.privacy, strict=True))
    for v in views:
        v.eval()
    video = batch["video"] * 0.5 + 0.25
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(16, 16) * 0.2  # zero mean in every 2 x 2 block
    with torch.no_grad():
        for v, p in zip(views, adv.privacy, strict=True):
            torch.testing.assert_close(v(video + checker), v(video), atol=1e-5, rtol=1e-4)
            assert (p(video + checker) - p(video)).abs().max() > 1e-3  # the full-resolution member sees it
    # the min-max runs through the views: both steps move the members behind them
    cfg, f, adv, batch = _setup(["train.adversary_lowpass=2"])
    before = copy.deepcopy(adv.privacy.state_dict())
    losses = train_step(f, f, adv, batch, cfg, _opts(f, adv), 0.7)
    assert math.isfinite(losses["bce_P"])
    assert any(not torch.equal(before[k], v) for k, v in adv.privacy.state_dict().items())
    with pytest.raises(Exception, match="adversary_lowpass"):
        load_experiment("tiny", ["train.adversary_lowpass=0"])


def test_noisy_privacy_views_add_instance_noise_in_training_only():
    cfg, f, adv, batch = _setup(["train.adversary_noise=0.2", "train.privacy_ensemble=1"])
    views = adv.privacy_views()
    seen = []
    for p in adv.privacy:
        p.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    video = batch["video"]
    views[0].train()
    views[0](video)
    noise = seen[-1] - video
    assert noise.std().item() == pytest.approx(0.2, rel=0.05) and noise.mean().abs() < 0.01
    views[0].eval()  # the validation probe reads the output as it is
    views[0](video)
    assert torch.equal(seen[-1], video)
    plain = _setup()[2]  # without a low-pass or noise the members are used as they are
    assert all(v is p for v, p in zip(plain.privacy_views(), plain.privacy, strict=True))
    with pytest.raises(Exception, match="adversary_noise"):
        load_experiment("tiny", ["train.adversary_noise=-0.1"])


@pytest.mark.parametrize("key,name", [("output_energy", "energy"), ("output_tv", "tv"),
                                      ("colour_invariance", "invariance"), ("dropped_invariance", "dropped"),
                                      ("shape_invariance", "shape"), ("motion_anchor", "motion")])
def test_rate_terms_add_their_weighted_value_to_the_anonymizer_objective(key, name):
    cfg, f, adv, batch = _setup([f"train.{key}=3.0"])
    plain_cfg = _setup()[0]
    totals = {}
    for label, c in (("rate", cfg), ("plain", plain_cfg)):
        g, a = copy.deepcopy(f), copy.deepcopy(adv)
        torch.manual_seed(1)  # the invariance term draws its re-colouring after every draw of the plain step
        totals[label] = train_step(g, g, a, batch, c, _opts(g, a), 0.7)
    assert name in totals["rate"] and name not in totals["plain"]
    assert totals["rate"][name] > 0
    assert totals["rate"]["total"] == pytest.approx(totals["plain"]["total"] + 3.0 * totals["rate"][name], rel=1e-4)


def test_negative_rate_weights_are_config_errors():
    from stprivacy.config import ConfigError

    with pytest.raises(ConfigError, match="output_energy"):
        load_experiment("tiny", ["train.output_tv=-1"])


def test_phase2_output_rank_projects_the_decoder_after_every_anonymizer_step():
    from stprivacy.training.phase2 import limit_decoder_rank

    cfg, f, adv, batch = _setup(["train.phase2_output_rank=3"])
    weight = f.to_pixels.weight
    assert torch.linalg.matrix_rank(weight.detach()).item() > 3
    before = weight.detach().clone()
    limit_decoder_rank(f, 3)
    assert torch.linalg.matrix_rank(weight.detach(), atol=1e-5).item() == 3
    # the best rank-3 approximation: the error is the energy of the dropped singular values
    s = torch.linalg.svdvals(before)
    assert (before - weight).norm().item() == pytest.approx(s[3:].norm().item(), rel=1e-4)
    f.to_pixels.weight.data.copy_(before)
    train_step(f, f, adv, batch, cfg, _opts(f, adv), 0.7)
    assert torch.linalg.matrix_rank(f.to_pixels.weight.detach(), atol=1e-5).item() == 3
    with pytest.raises(Exception, match="phase2_output_rank"):
        load_experiment("tiny", ["train.phase2_output_rank=-1"])


def test_a_decoder_rank_limit_from_phase_1_and_one_from_phase_2_cannot_be_combined():
    from stprivacy.config import ConfigError

    with pytest.raises(ConfigError, match="model.output_rank"):
        load_experiment("tiny", ["train.phase2_output_rank=4", "model.output_rank=4"])


def test_bounded_views_show_the_recognizers_what_a_published_video_shows():
    from stprivacy.models.anonymizer import AnonymizerOutput
    from stprivacy.training.phase2 import recognizer_view

    # 1 x 3 x 2 x 4 x 4 with tubelets 2 x 2 x 2: 4 tubelets; tubelet 0 kept but painted below 0.5/255 everywhere,
    # tubelet 1 kept with values outside [0, 1], tubelet 2 dropped (zero), tubelet 3 kept and ordinary
    video = torch.full((1, 3, 2, 4, 4), 0.5)
    video[..., :2, :2] = 0.001
    video[..., :2, 2:] = torch.tensor([-0.3, 1.7]).repeat(6)[:6].reshape(3, 2, 1, 1).expand(3, 2, 2, 2)
    video[..., 2:, :2] = 0.0
    keep = torch.tensor([[[1.0, 1.0, 0.0, 1.0]]], requires_grad=True)
    out = AnonymizerOutput(video=video, keep_mask=keep, decisions=[keep])
    cfg = load_experiment("tiny", []).train
    v, m = recognizer_view(out, cfg, (2, 2, 2))
    assert v is video and m is keep  # the paper: the float output and the decision
    cfg = load_experiment("tiny", ["train.bounded_output=true"]).train
    v, m = recognizer_view(out, cfg, (2, 2, 2))
    assert m is keep and v.min() == 0 and v.max() == 1 and torch.all(v[..., :2, :2] == 0)
    assert torch.allclose(v * 255, (v * 255).round())
    cfg = load_experiment("tiny", ["train.bounded_output=true", "train.bounded_mask=true"]).train
    v, m = recognizer_view(out, cfg, (2, 2, 2))
    assert m.tolist() == [[[0.0, 1.0, 0.0, 1.0]]]  # the painted-black tubelet reads as dropped
    m.sum().backward()
    assert keep.grad.tolist() == [[[0.0, 1.0, 0.0, 1.0]]]  # the decision's gradient flows where the video shows


def test_a_bounded_mask_without_a_bounded_output_is_a_config_error():
    from stprivacy.config import ConfigError

    with pytest.raises(ConfigError, match="bounded_mask"):
        load_experiment("tiny", ["train.bounded_mask=true"])


def test_bounded_phase_2_trains_both_sides_on_the_published_view():
    cfg, f, adv, batch = _setup(["train.bounded_output=true", "train.bounded_mask=true"])
    before = [p.detach().clone() for p in (*f.parameters(), *adv.parameters())]
    losses = train_step(f, f, adv, batch, cfg, _opts(f, adv), cfg.model.keep_ratio)
    after = list((*f.parameters(), *adv.parameters()))
    assert all(math.isfinite(v) for v in losses.values())
    moved = [not torch.equal(b, a) for b, a in zip(before, after, strict=True)]
    assert any(moved[:len(list(f.parameters()))]) and any(moved[len(list(f.parameters())):])


def test_phase2_validation_reads_the_action_recognizer_on_the_float_and_the_published_output():
    from stprivacy.data.clips import ClipSet
    from stprivacy.training.phase2 import validation_readings

    cfg, f, adv, _ = _setup(["runtime.progress=false"])
    torch.manual_seed(1)
    val = ClipSet(torch.randint(0, 255, (6, 3, 8, 32, 32), dtype=torch.uint8), torch.randint(4, (6,)),
                  torch.randint(2, (6, 5)), [f"a{i}" for i in range(4)], [f"p{i}" for i in range(5)],
                  actor_masks=torch.randint(0, 2, (6, 8, 32, 32), dtype=torch.uint8) * 255)
    with torch.no_grad():
        f.to_pixels.bias.add_(-2.0)  # an output mostly below 0: clamped away once published
    readings = validation_readings(f, adv, val, cfg)
    assert f.training and adv.training
    assert readings["val_clamped"] > 0.5 and 0.0 <= readings["val_painted_black"] <= 1.0
    for key in ("val_A_top1", "val_A_float_top1"):
        assert readings[key] in {100.0 * k / 6 for k in range(7)}
    assert math.isnan(readings["val_ridge_cmap"]) or 0.0 <= readings["val_ridge_cmap"] <= 100.0


def test_the_linear_family_is_a_phase2_adversary_that_learns_and_that_the_anonymizer_fights():
    cfg = load_experiment("tiny", ["train.privacy_adversaries=[linear]"])
    torch.manual_seed(0)
    f, adv = STPrivacy(cfg.model, num_classes=4).train(), Adversaries(cfg, 4, 5).train()
    (linear,) = adv.privacy
    assert type(linear).__name__ == "CellLinearAttacker" and linear.cells == cfg.frame_attacker.linear_cells
    batch = {"video": torch.rand(6, 3, 8, 32, 32), "action": torch.randint(4, (6,)),
             "attributes": torch.randint(2, (6, 5))}
    opts = _opts(f, adv)
    train_step(f, f, adv, batch, cfg, opts, 0.7)  # a zero-initialised attacker gives the anonymizer no gradient
    assert linear.head.weight.abs().sum() > 0  # ... but it learns from the detached output
    opts["anonymizer"].zero_grad(set_to_none=True)
    out = f(batch["video"])
    adv.requires_grad_(False)
    (-privacy_loss(linear(out.video, out.keep_mask), batch["attributes"])).backward()
    assert f.to_pixels.weight.grad.abs().sum() > 0
