import torch

from stprivacy.layers import Block, MaskedAttention, attention_allowed


def test_allowed_pattern_is_kept_keys_or_self():
    keep = torch.tensor([[1.0, 0.0, 1.0]])
    allowed = attention_allowed(keep)[0, 0]
    expected = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    assert torch.equal(allowed, expected)


def test_fused_and_differentiable_paths_agree():
    attn = MaskedAttention(16, 2)
    x = torch.randn(2, 7, 16)
    keep = (torch.rand(2, 7) > 0.4).float()
    fused = attn(x, keep)
    soft = attn(x, keep.clone().requires_grad_())
    torch.testing.assert_close(fused, soft, atol=1e-5, rtol=1e-5)


def test_dropped_tokens_never_influence_kept_tokens():
    block = Block(16, 2)
    x = torch.randn(1, 6, 16)
    keep = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0, 1.0]])
    for grad in (False, True):
        k = keep.clone().requires_grad_(grad)
        y1 = block(x, k)
        x2 = x.clone()
        x2[:, [2, 4]] += 100 * torch.randn(1, 2, 16)
        y2 = block(x2, k)
        kept = keep[0].bool()
        torch.testing.assert_close(y1[:, kept], y2[:, kept])
        assert not torch.allclose(y1[:, ~kept], y2[:, ~kept])


def test_mask_gradient_reaches_keep_values():
    attn = MaskedAttention(8, 2)
    keep = torch.tensor([[1.0, 0.0, 1.0, 1.0]], requires_grad=True)
    attn(torch.randn(1, 4, 8), keep).pow(2).sum().backward()
    assert keep.grad is not None and keep.grad.abs().sum() > 0


def test_differentiable_path_is_finite_when_forbidden_scores_dominate():
    """A dropped key with a huge score must not underflow the allowed weights to 0 / 0."""
    attn = MaskedAttention(4, 1)
    with torch.no_grad():
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[:4].copy_(torch.eye(4) * 30)  # q = 30 x
        attn.qkv.weight[4:8].copy_(torch.eye(4) * 30)  # k = 30 x
    x = torch.zeros(1, 3, 4)
    x[0, 0, 0], x[0, 1, 0], x[0, 2, 1] = 1.0, 40.0, 1.0  # token 1 (dropped) has an enormous score with token 0
    keep = torch.tensor([[1.0, 0.0, 1.0]], requires_grad=True)
    out = attn(x, keep)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, attn(x, keep.detach()), atol=1e-4, rtol=1e-4)
