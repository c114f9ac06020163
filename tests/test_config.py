import pytest

from stprivacy.config import (
    ExperimentConfig,
    apply_overrides,
    from_dict,
    load_experiment,
    peak_lr,
    preset_names,
    to_dict,
)
from stprivacy.errors import ConfigError
from stprivacy.layers import TubeletGrid


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_round_trips(name):
    cfg = load_experiment(name)
    assert from_dict(ExperimentConfig, to_dict(cfg)) == cfg
    # models must fit the clips the data gives, and the grid must be valid
    TubeletGrid(cfg.model.num_frames, cfg.model.img_size, cfg.model.img_size, cfg.model.tubelet)
    if cfg.data.kind != "synthetic":
        assert cfg.data.sampling.num_frames == cfg.model.num_frames == cfg.recognizer.num_frames
        assert cfg.data.sampling.size == cfg.model.img_size


def test_paper_presets_have_the_paper_settings():
    cfg = load_experiment("vp-hmdb51")
    assert (cfg.model.embed_dim, cfg.model.depth, cfg.model.num_heads) == (384, 12, 6)
    assert cfg.model.selection_points == (3, 6, 9) and cfg.model.keep_ratio == 0.7
    assert (cfg.train.phase1_epochs, cfg.train.phase2_epochs, cfg.evaluate.epochs) == (80, 40, 80)
    assert cfg.train.lambda_a == cfg.train.lambda_p == 0.5
    assert peak_lr(cfg.train) == pytest.approx(1e-3 * 32 / 512)
    assert cfg.evaluate.keep_ratios == (1.0, 0.85, 0.7, 0.55, 0.4)
    cross = load_experiment("ucf101-to-hmdb51")
    assert cross.data.kind == "ucf101" and cross.evaluate.data.kind == "hmdb51"


def test_overrides_are_typed():
    cfg = load_experiment("synth-quick",
                          ["train.phase1_epochs=7", "model.keep_ratio=0.5", "evaluate.keep_ratios=[1, 0.5]"])
    assert cfg.train.phase1_epochs == 7 and cfg.model.keep_ratio == 0.5
    assert cfg.evaluate.keep_ratios == (1.0, 0.5)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=3", "unknown key"),
        ("train.phase1_epochs=three", "integer"),
        ("model.keep_ratio=1.5", "keep_ratio"),
        ("data.kind=imagenet", "data.kind"),
        ("runtime.precision=fp8", "precision"),
        ("noequals", "key=value"),
        ("model.preset=vit-xl", "unknown model preset"),
        ("evaluate.ridge_moments=3", "ridge_moments"),
        ("evaluate.subspace_rank=0", "subspace_rank"),
        ("evaluate.subspace_reader=svm", "subspace_reader"),
        ("evaluate.attackers=[vit,pca]", "subspace"),
    ],
)
def test_bad_overrides_give_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment("synth-quick", [override])


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="synth-quick"):
        load_experiment("no-such-preset")


def test_apply_overrides_creates_nested_sections():
    assert apply_overrides({}, ["evaluate.data.kind=hmdb51"]) == {"evaluate": {"data": {"kind": "hmdb51"}}}


def test_an_unknown_phase2_adversary_family_is_a_config_error_before_any_training():
    with pytest.raises(ConfigError, match="privacy_adversaries"):
        load_experiment("tiny", ["train.privacy_adversaries=[vit,ridge]"])
    assert load_experiment("tiny", ["train.privacy_adversaries=[frame,linear]"]).train.privacy_adversaries == (
        "frame", "linear")


@pytest.mark.parametrize("override", [[], ["train.phase2_output_rank=32"]])
def test_linear_erasure_needs_a_rank_limited_decoder(override):
    with pytest.raises(ConfigError, match="rank-limited decoder"):
        load_experiment("tiny", ["train.linear_erasure=true", *override])
    assert load_experiment("tiny", ["train.linear_erasure=true", "train.phase2_output_rank=2"]).train.linear_erasure


def test_a_second_order_guard_needs_linear_erasure_and_a_non_negative_distortion():
    with pytest.raises(ConfigError, match="set train.linear_erasure"):
        load_experiment("tiny", ["train.erasure_second_order=true"])
    with pytest.raises(ConfigError, match="erasure_distortion"):
        load_experiment("tiny", ["train.erasure_distortion=-1"])
    cfg = load_experiment("tiny", ["train.linear_erasure=true", "train.phase2_output_rank=2",
                                   "train.erasure_second_order=true"])
    assert cfg.train.erasure_second_order and cfg.train.erasure_distortion == 0.1
    with pytest.raises(ConfigError, match="erasure_guard_products"):
        load_experiment("tiny", ["train.erasure_guard_products=pairs"])


def test_guard_only_ratios_need_a_guard_and_an_eraser_at_that_ratio():
    guarded = ["train.linear_erasure=true", "train.phase2_output_rank=2", "train.erasure_second_order=true",
               "train.erasure_keep_ratios=[0.7,0.4]"]
    with pytest.raises(ConfigError, match="set train.erasure_second_order"):
        load_experiment("tiny", ["train.linear_erasure=true", "train.phase2_output_rank=2",
                                 "train.erasure_guard_only_keep_ratios=[0.4]"])
    with pytest.raises(ConfigError, match=r"\[0.55\] are not in train.erasure_keep_ratios"):
        load_experiment("tiny", [*guarded, "train.erasure_guard_only_keep_ratios=[0.55]"])
    cfg = load_experiment("tiny", [*guarded, "train.erasure_guard_only_keep_ratios=[0.4]"])
    assert cfg.train.erasure_guard_only_keep_ratios == (0.4,)


def test_publication_noise_needs_erasers_a_sign_and_ratios_that_have_one():
    erasing = ["train.linear_erasure=true", "train.phase2_output_rank=2", "train.erasure_keep_ratios=[0.7,0.4]"]
    with pytest.raises(ConfigError, match="set train.linear_erasure"):
        load_experiment("tiny", ["train.erasure_noise=0.2"])
    with pytest.raises(ConfigError, match="erasure_noise must be >= 0"):
        load_experiment("tiny", [*erasing, "train.erasure_noise=-0.1"])
    with pytest.raises(ConfigError, match=r"\[0.55\] are not in train.erasure_keep_ratios"):
        load_experiment("tiny", [*erasing, "train.erasure_noise=0.2", "train.erasure_noise_keep_ratios=[0.55]"])
    cfg = load_experiment("tiny", [*erasing, "train.erasure_noise=0.2", "train.erasure_noise_keep_ratios=[0.7]"])
    assert cfg.train.erasure_noise == 0.2 and cfg.train.erasure_noise_keep_ratios == (0.7,)


def test_a_keep_ratio_matches_its_list_up_to_float_rounding():
    from stprivacy.config import ratio_in

    assert ratio_in(0.7, [0.4, 1 - 0.3])  # 1 - 0.3 is 0.7000000000000001
    assert not ratio_in(0.7, [0.4, 0.71])
    assert not ratio_in(0.7, [])
