import pickle

import pytest
import torch
from safetensors.torch import save_file

from stprivacy.errors import CheckpointError
from stprivacy.models import model_preset
from stprivacy.models.pretrained import inflate_pos_embed, load_imagenet_vit
from stprivacy.models.vit import VideoViT


def timm_vit_state(dim=48, depth=5, patch=8, img=32, heads_bias=True, extra_tokens=1, classes=10):
    """A randomly filled state dict in timm's ViT layout."""
    g = img // patch
    sd = {
        "cls_token": torch.randn(1, 1, dim),
        "pos_embed": torch.randn(1, extra_tokens + g * g, dim),
        "patch_embed.proj.weight": torch.randn(dim, 3, patch, patch),
        "patch_embed.proj.bias": torch.randn(dim),
        "norm.weight": torch.randn(dim), "norm.bias": torch.randn(dim),
        "head.weight": torch.randn(classes, dim), "head.bias": torch.randn(classes),
    }
    for i in range(depth):
        for name, shape in [("norm1.weight", (dim,)), ("norm1.bias", (dim,)), ("attn.qkv.weight", (3 * dim, dim)),
                            ("attn.qkv.bias", (3 * dim,)), ("attn.proj.weight", (dim, dim)),
                            ("attn.proj.bias", (dim,)), ("norm2.weight", (dim,)), ("norm2.bias", (dim,)),
                            ("mlp.fc1.weight", (4 * dim, dim)), ("mlp.fc1.bias", (4 * dim,)),
                            ("mlp.fc2.weight", (dim, 4 * dim)), ("mlp.fc2.bias", (dim,))]:
            sd[f"blocks.{i}.{name}"] = torch.randn(shape)
    return sd


def test_timm_safetensors_inflates_exactly(tmp_path):
    sd = timm_vit_state()
    save_file(sd, str(tmp_path / "vit.safetensors"))
    vit = VideoViT(model_preset("tiny"))
    report = load_imagenet_vit(vit, tmp_path / "vit.safetensors")
    assert not report.missing and sorted(report.unexpected) == ["cls_token", "head.bias", "head.weight"]
    w = vit.embed.proj.weight
    assert w.shape == (48, 3, 2, 8, 8)
    torch.testing.assert_close(w.sum(2), sd["patch_embed.proj.weight"])  # a static clip sees the 2D kernel
    pos = vit.pos_embed.reshape(4, 16, 48)
    for slice_pos in pos:
        torch.testing.assert_close(slice_pos, sd["pos_embed"][0, 1:])
    torch.testing.assert_close(vit.blocks[3].attn.qkv.weight, sd["blocks.3.attn.qkv.weight"])


def test_deit_pth_wrapper_center_inflation_and_missing_blocks(tmp_path):
    sd = timm_vit_state(depth=4, extra_tokens=2)  # DeiT distilled: cls + dist tokens, one block short
    sd["dist_token"] = torch.randn(1, 1, 48)
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "deit.pth")
    vit = VideoViT(model_preset("tiny"))
    report = load_imagenet_vit(vit, tmp_path / "deit.pth", inflate="center")
    assert any(k.startswith("blocks.4.") for k in report.missing) and "dist_token" in report.unexpected
    assert torch.count_nonzero(vit.embed.proj.weight[:, :, 0]) == 0
    torch.testing.assert_close(vit.embed.proj.weight[:, :, 1], sd["patch_embed.proj.weight"])
    assert "loaded" in report.summary()


def test_vit_s_position_table_is_resized_from_14x14_to_7x7():
    pos = inflate_pos_embed(torch.randn(1, 197, 384), (7, 7), 8)
    assert pos.shape == (1, 392, 384)
    assert torch.equal(pos[:, :49], pos[:, 49:98])


def test_wrong_size_and_unsafe_files_are_refused(tmp_path):
    save_file(timm_vit_state(dim=64), str(tmp_path / "big.safetensors"))
    with pytest.raises(CheckpointError, match="shape"):
        load_imagenet_vit(VideoViT(model_preset("tiny")), tmp_path / "big.safetensors")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(CheckpointError, match="safely"):
        load_imagenet_vit(VideoViT(model_preset("tiny")), tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="not found"):
        load_imagenet_vit(VideoViT(model_preset("tiny")), tmp_path / "none.pth")


def test_pipeline_builds_every_vit_from_the_pretrained_file(tmp_path):
    from stprivacy import pipeline
    from stprivacy.config import load_experiment

    sd = timm_vit_state()
    save_file(sd, str(tmp_path / "vit.safetensors"))
    path = tmp_path / "vit.safetensors"
    cfg = load_experiment("tiny", [f"model.pretrained={path}", f"recognizer.pretrained={path}",
                                   "train.phase1_epochs=0", "train.phase2_epochs=0"])
    run = pipeline.prepare_run(cfg, tmp_path / "run")
    model = pipeline.train(run)
    event = next(r for r in run.read_log() if r["event"] == "pretrained")
    assert not event["missing"] and "head.weight" in event["unexpected"]
    torch.testing.assert_close(model.vit.blocks[0].mlp.fc1.weight, sd["blocks.0.mlp.fc1.weight"])
