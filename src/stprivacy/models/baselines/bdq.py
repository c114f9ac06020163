"""BDQ (Kumawat and Nagahara, ECCV 2022): Blur, Difference, Quantization.

Three learnable stages applied to the whole clip:

1. **Blur**: a Gaussian blur whose standard deviation is learned (one per frame position, as in the paper);
2. **Difference**: each frame minus the previous one, which keeps what moves and removes still appearance;
3. **Quantization**: a differentiable staircase ``q(x) = sum_i sigmoid(beta * (x - b_i)) / n`` with learned bin
   edges ``b_i``, hard steps (``beta -> inf``) in inference.

Trained with (see :mod:`stprivacy.training.baselines`)::

    L_f = CE(A(f(x)), y) - alpha * H(P(f(x)))

action cross-entropy minus the entropy of the privacy model's prediction, the privacy model minimising its BCE in
alternate steps. Output frames are mapped to [0, 1] (a difference of 0 is mid-grey) so that they are stored and
attacked like any other video.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stprivacy.models.baselines.config import BdqConfig


class LearnableBlur(nn.Module):
    """Separable Gaussian blur with one learned sigma per frame position (B x 3 x T x H x W)."""

    def __init__(self, num_frames: int, sigma_init: float, sigma_max: float):
        super().__init__()
        self.sigma_max = sigma_max
        self.radius = math.ceil(3 * sigma_max)
        # sigma = sigma_max * sigmoid(raw): positive and bounded by what the kernel can hold.
        p = sigma_init / sigma_max
        raw = math.log(p / (1 - p)) if p < 1 else 6.0
        self.raw_sigma = nn.Parameter(torch.full((num_frames,), raw))

    def sigma(self) -> torch.Tensor:
        return self.sigma_max * torch.sigmoid(self.raw_sigma)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = video.shape
        if t != len(self.raw_sigma):
            raise ValueError(f"BDQ was built for {len(self.raw_sigma)} frames, got {t}")
        x = torch.arange(-self.radius, self.radius + 1, device=video.device, dtype=video.dtype)
        k = torch.exp(-(x**2) / (2 * self.sigma().to(video.dtype).unsqueeze(1) ** 2))
        k = k / k.sum(1, keepdim=True)  # T x K
        # frames as channels of one grouped convolution: (B) x (T*3) x H x W, kernel per frame repeated over RGB
        frames = video.transpose(1, 2).reshape(b, t * c, h, w)
        kernel = k.repeat_interleave(c, dim=0)  # (T*3) x K
        r = self.radius
        frames = F.conv2d(F.pad(frames, (r, r, 0, 0), mode="replicate"), kernel.view(t * c, 1, 1, -1), groups=t * c)
        frames = F.conv2d(F.pad(frames, (0, 0, r, r), mode="replicate"), kernel.view(t * c, 1, -1, 1), groups=t * c)
        return frames.reshape(b, t, c, h, w).transpose(1, 2)


def frame_difference(video: torch.Tensor) -> torch.Tensor:
    """``x_t - x_{t-1}`` in [-1, 1] (B x 3 x T x H x W); the first frame, with no predecessor, repeats the second
    difference so the clip keeps its length."""
    diff = video[:, :, 1:] - video[:, :, :-1]
    return torch.cat([diff[:, :, :1], diff], dim=2)


class _SoftStaircase(torch.autograd.Function):
    """``mean_k sigmoid(beta (x - e_k))`` one edge at a time, forward and backward.

    Written out because autograd would keep a ``K x`` video-sized tensor of sigmoids for the backward and run a
    dozen kernels per edge; here the backward recomputes each edge's sigmoid and accumulates the gradients of
    ``x`` (``beta/K sum_k s_k (1 - s_k)``) and of each edge (minus its share of the same sum), so memory stays at
    one video and the whole stage runs several times faster (tested against autograd with ``gradcheck``).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, edges: torch.Tensor, beta: float) -> torch.Tensor:
        ctx.save_for_backward(x, edges)
        ctx.beta = beta
        out = torch.zeros_like(x)
        for e in edges.unbind():  # 0-d tensors: no copy to the host on a GPU
            out += torch.sigmoid(beta * (x - e))
        return out.div_(len(edges))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, edges = ctx.saved_tensors
        scale = ctx.beta / len(edges)
        slope = torch.zeros_like(x)
        edge_grads = []
        for e in edges.unbind():  # 0-d tensors: no copy to the host on a GPU
            s = torch.sigmoid(ctx.beta * (x - e))
            d = s.mul_(1 - s)  # s (1 - s), in place
            slope += d
            edge_grads.append(-(grad * d).sum() * scale)
        return grad * slope * scale, torch.stack(edge_grads).to(edges.dtype), None


class DifferentiableQuantizer(nn.Module):
    """A staircase of ``levels`` values in [0, 1] with learned bin edges; soft (sigmoids) in training, hard steps
    in inference."""

    def __init__(self, levels: int, beta: float):
        super().__init__()
        self.beta = beta
        # Edges start evenly spaced in [0, 1]; stored unsorted, used sorted.
        self.edges = nn.Parameter(torch.linspace(0, 1, levels + 1)[1:-1].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        edges = self.edges.sort().values.to(x.dtype)
        if self.training:
            return _SoftStaircase.apply(x, edges, self.beta)
        return (x.unsqueeze(0) > edges.view(-1, *([1] * x.dim()))).to(x.dtype).mean(0)


class BdqTransform(nn.Module):
    """``B x 3 x T x H x W`` video in [0, 1] -> quantized blurred frame differences, same shape, in [0, 1]."""

    def __init__(self, num_frames: int, cfg: BdqConfig | None = None):
        super().__init__()
        cfg = cfg or BdqConfig()
        self.blur = LearnableBlur(num_frames, cfg.sigma_init, cfg.sigma_max)
        self.quantize = DifferentiableQuantizer(cfg.levels, cfg.beta)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.shape[2] < 2:
            raise ValueError("BDQ needs at least two frames (it takes frame differences)")
        diff = frame_difference(self.blur(video))
        return self.quantize((diff + 1) / 2)
