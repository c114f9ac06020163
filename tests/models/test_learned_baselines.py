"""The learned baselines' networks: shapes, ranges, gradient flow, and the pieces with a closed form."""

import math

import pytest
import torch

from stprivacy.losses import binary_entropy, nt_xent
from stprivacy.models.baselines import BdqConfig, SpactConfig, VitaConfig, build_learned_baseline
from stprivacy.models.baselines.bdq import DifferentiableQuantizer, LearnableBlur, frame_difference
from stprivacy.models.baselines.spact import ContrastiveEncoder, two_views
from stprivacy.models.config import FrameAttackerConfig

SMALL = {"vita": VitaConfig(widths=(4, 8), residual_blocks=1), "spact": SpactConfig(widths=(4, 8)),
         "bdq": BdqConfig()}


def build(name):
    return build_learned_baseline(name, 4, vita=SMALL["vita"], spact=SMALL["spact"], bdq=SMALL["bdq"])


@pytest.mark.parametrize("name", ["vita", "spact", "bdq"])
def test_shape_range_and_gradient_reaches_every_parameter(name):
    net = build(name).train()
    x = torch.rand(2, 3, 4, 16, 16, requires_grad=True)
    weights = torch.linspace(-1, 1, x.numel()).view_as(x)
    # a loss that depends on every output pixel differently, so no parameter gets an exactly-zero gradient; one
    # SGD step first, since VITA's zero last layer passes no gradient back at step 0 (by design: identity start)
    (net(x) * weights).sum().backward()
    torch.optim.SGD(net.parameters(), lr=0.1).step()
    net.zero_grad()
    x.grad = None
    out = net(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    (out * weights).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    moved = sum(int(p.grad.abs().sum() > 0) for p in net.parameters())
    assert moved == len(list(net.parameters())), name


def test_vita_starts_as_the_identity():
    net = build("vita").eval()
    x = torch.rand(2, 3, 4, 16, 16)
    torch.testing.assert_close(net(x), x)


@pytest.mark.parametrize("name", ["vita", "spact"])
def test_frames_are_transformed_independently(name):
    net = build(name).eval()
    x = torch.rand(1, 3, 4, 16, 16)
    y = x.clone()
    y[:, :, 2] = torch.rand(1, 3, 16, 16)
    a, b = net(x), net(y)
    torch.testing.assert_close(a[:, :, [0, 1, 3]], b[:, :, [0, 1, 3]])
    assert not torch.allclose(a[:, :, 2], b[:, :, 2])


def test_frame_sizes_the_nets_cannot_take_are_clear_errors():
    with pytest.raises(ValueError, match="divisible by 2"):
        build("vita")(torch.rand(1, 3, 4, 15, 15))
    with pytest.raises(ValueError, match="two frames"):
        build("bdq")(torch.rand(1, 3, 1, 16, 16))


def test_bdq_blur_equals_a_gaussian_blur_of_each_frame():
    blur = LearnableBlur(num_frames=2, sigma_init=1.5, sigma_max=3.0)
    assert blur.sigma().tolist() == pytest.approx([1.5, 1.5])
    x = torch.zeros(1, 3, 2, 31, 31)
    x[0, :, :, 15, 15] = 1.0
    out = blur(x)
    # the kernel spans 3 * sigma_max = 9 pixels each side: an impulse becomes the outer product of that kernel
    k = torch.exp(-torch.arange(-9.0, 10.0) ** 2 / (2 * 1.5**2))
    k = k / k.sum()
    torch.testing.assert_close(out[0, :, :, 6:25, 6:25], torch.outer(k, k).expand(3, 2, 19, 19))
    assert out.sum().item() == pytest.approx(6.0, rel=1e-5)


def test_frame_difference_by_hand():
    v = torch.tensor([0.1, 0.4, 0.3, 0.9]).view(1, 1, 4, 1, 1).expand(1, 3, 4, 1, 1)
    d = frame_difference(v)[0, 0, :, 0, 0]
    torch.testing.assert_close(d, torch.tensor([0.3, 0.3, -0.1, 0.6]))


def test_bdq_quantizer_is_a_staircase_in_inference_and_differentiable_in_training():
    q = DifferentiableQuantizer(levels=4, beta=50.0)
    x = torch.linspace(0, 1, 101)
    hard = q.eval()(x)
    levels = sorted(set((hard * 3).round().tolist()))
    torch.testing.assert_close(hard * 3, (hard * 3).round())
    assert levels == [0.0, 1.0, 2.0, 3.0]
    assert torch.all(hard[1:] >= hard[:-1])  # monotone
    q.train()
    xs = x.clone().requires_grad_(True)
    soft = q(xs)
    soft.sum().backward()
    assert xs.grad.abs().sum() > 0 and q.edges.grad.abs().sum() > 0
    # the soft staircase approaches the hard one away from the edges
    edges = q.edges.detach()
    torch.testing.assert_close(edges, torch.tensor([0.25, 0.5, 0.75]))  # evenly spaced at the start
    away = (x.unsqueeze(1) - edges).abs().gt(0.1).all(1)
    torch.testing.assert_close(soft.detach()[away], hard[away], atol=0.01, rtol=0)


def test_binary_entropy_by_hand():
    p = torch.tensor([0.5, 0.9])
    logits = torch.log(p / (1 - p))
    expected = (math.log(2) + (-0.9 * math.log(0.9) - 0.1 * math.log(0.1))) / 2
    assert binary_entropy(logits).item() == pytest.approx(expected, rel=1e-5)
    assert torch.isfinite(binary_entropy(torch.tensor([1e4, -1e4])))


def test_nt_xent_against_a_hand_computed_case():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # norm does not matter: cosine similarity
    t = 0.5
    # unit vectors a, b, a, b; every anchor's partner has cosine 1, the two others 0 and 1 or 0 and 0 ...
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    cos = (z @ z.T).tolist()
    total = 0.0
    partner = [2, 3, 0, 1]
    for i in range(4):
        denom = sum(math.exp(cos[i][k] / t) for k in range(4) if k != i)
        total += -math.log(math.exp(cos[i][partner[i]] / t) / denom)
    assert nt_xent(z1, z2, t).item() == pytest.approx(total / 4, rel=1e-6)
    # in numbers: each anchor sees e^2 (partner), e^0 and e^0  -> -log(e^2 / (e^2 + 2))
    assert nt_xent(z1, z2, t).item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 2)), rel=1e-6)
    with pytest.raises(ValueError, match="two B x D"):
        nt_xent(z1, z2[:1], t)


def test_spact_views_are_two_different_frames_and_the_encoder_projects_them():
    video = torch.arange(4.0).view(1, 1, 4, 1, 1).expand(3, 3, 4, 8, 8).contiguous()
    v1, v2 = two_views(video, torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == (3, 3, 8, 8)
    # each view is one frame (a constant image of its index), and the two differ
    assert torch.all(v1.amax((1, 2, 3)) == v1.amin((1, 2, 3)))
    assert torch.all(v1[:, 0, 0, 0] != v2[:, 0, 0, 0])
    enc = ContrastiveEncoder(SpactConfig(projection_dim=8), FrameAttackerConfig(widths=(4, 8)))
    assert enc(v1).shape == (3, 8)


def test_bdq_soft_staircase_gradients_equal_autograd_of_the_formula():
    from stprivacy.models.baselines.bdq import _SoftStaircase

    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    edges = torch.tensor([0.2, 0.45, 0.8], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _SoftStaircase.apply(a, b, 7.0), (x, edges))
    formula = torch.sigmoid(7.0 * (x.unsqueeze(0) - edges.view(-1, 1, 1, 1, 1))).mean(0)
    out = _SoftStaircase.apply(x, edges, 7.0)
    torch.testing.assert_close(out, formula)
    upstream = torch.randn_like(out)
    got = torch.autograd.grad((out * upstream).sum(), (x, edges))
    expected = torch.autograd.grad((formula * upstream).sum(), (x, edges))
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)
