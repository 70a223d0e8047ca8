"""Mona, the multi-cognitive visual adapter (Yin et al. 2024; Leiyi-Hu/mona, `Mona` / `MonaOp` of
its Swin backbones), two per block: after attention's and after the MLP's residual add.

    x + up(dropout(gelu(filter(down(s1 * LN(x) + s2 * x)))))     s1 = 1e-6, s2 = 1 (vectors)
    filter(g) = g' + proj1x1(g'),  g' = g + mean(dw3x3(g), dw5x5(g), dw7x7(g))

on the patch tokens seen as their (T, H, W) grid. `mona_conv="2d"` convolves each frame (the
paper); `"3d"` uses (3, k, k) kernels, so neighbouring frames mix too (Mona-3D, new here).
Initialisation is the reference's (PyTorch defaults), so unlike ST-Adapter the network
changes at step 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .base import GridResidual, MethodConfig, block_width, blocks, fill_slot, register_method
from .grid_conv import depthwise_conv

KERNELS = (3, 5, 7)
TEMPORAL = {"2d": 1, "3d": 3}


@dataclass
class MonaConfig(MethodConfig):
    mona_dim: int = field(default=64, metadata={"help": "Mona bottleneck width (64 in the reference)"})
    mona_conv: str = field(default="2d", metadata={
        "help": "Mona filters: 2d (3x3, 5x5, 7x7 in each frame, the paper) or 3d (3xkxk: neighbouring frames too)"})
    mona_dropout: float = field(default=0.1, metadata={"help": "Mona dropout before the up-projection"})


class MultiCognitiveFilter(nn.Module):
    """The reference's MonaOp on (B, T, H, W, C) channels-last tensors: its three filters and their
    identity are one depthwise convolution here (`forward`); its 1x1 projector (and the identity
    around it) is applied by MonaUp, with the layers after it."""

    def __init__(self, width: int, temporal: int) -> None:
        super().__init__()
        for i, k in enumerate(KERNELS, 1):
            conv = nn.Conv3d(width, width, (temporal, k, k), padding=(temporal // 2, k // 2, k // 2), groups=width)
            self.add_module(f"conv{i}", conv)
        self.projector = nn.Conv3d(width, width, kernel_size=1)

    def depthwise_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """mean(conv1, conv2, conv3) + identity as one depthwise kernel of the largest size (one pass, not four)."""
        big = KERNELS[-1]
        convs = (self.conv1, self.conv2, self.conv3)
        weight = sum(F.pad(c.weight, ((big - k) // 2,) * 4) for c, k in zip(convs, KERNELS)) / len(convs)
        t = weight.shape[2]
        identity = torch.zeros_like(weight)
        identity[:, :, t // 2, big // 2, big // 2] = 1.0
        return weight + identity, sum(c.bias for c in convs) / len(convs)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        """g + mean(conv1(g), conv2(g), conv3(g))."""
        return depthwise_conv(g, *self.depthwise_kernel())


class Mona(GridResidual):
    def __init__(self, layout, dim: int, width: int, temporal: int, dropout: float) -> None:
        super().__init__(layout)
        self.norm = nn.LayerNorm(dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))  # s1, the scale of LN(x)
        self.gammax = nn.Parameter(torch.ones(dim))  # s2, the scale of x
        self.project1 = nn.Linear(dim, width)
        self.adapter_conv = MultiCognitiveFilter(width, temporal)
        self.dropout = nn.Dropout(dropout)
        self.project2 = nn.Linear(width, dim)

    def branch(self, grid: torch.Tensor) -> torch.Tensor:
        norm, projector = self.norm, self.adapter_conv.projector
        down = MonaDown.apply(grid, norm.weight, norm.bias, self.gamma, self.gammax, norm.eps,
                              self.project1.weight, self.project1.bias)
        p = self.dropout.p if self.training else 0.0
        return MonaUp.apply(self.adapter_conv(down), projector.weight.flatten(1), projector.bias,
                            self.project2.weight, self.project2.bias, p)


# Mona's layers as two autograd Functions around the filter, each one node with a hand-written
# backward instead of a dozen (linears, gelu, dropout, the norm's scaled sum): a Mona module's forward
# + backward measured 0.97x (2-D) and 0.99x (3-D) of autograd's graph of the same ops on CPU (ViT-S
# grid at 8x112, old and new alternated).


def computing_dtype(device: str, dtype: torch.dtype) -> torch.dtype:
    """The type autocast would run a matrix product in, else the input's own."""
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else dtype


class MonaDown(torch.autograd.Function):
    """project1(s1 * LN(x) + s2 * x) over the last dimension, s1 folded into the norm's affine: forward
    one LayerNorm, an in-place addcmul and one addmm; backward the addmm's two products, one LayerNorm
    backward with s2 * grad added into its input gradient in place, s2's gradient one product summed.
    As autocast would: the norm and the sum in float32, the projection in autocast's type."""

    @staticmethod
    def forward(ctx, x, weight, bias, s1, s2, eps, w1, b1):
        ctx.dtypes = (x.dtype, weight.dtype, bias.dtype, s1.dtype, s2.dtype, w1.dtype, b1.dtype)
        device = x.device.type
        low = computing_dtype(device, x.dtype)
        if torch.is_autocast_enabled(device):
            x, weight, bias, s1, s2 = (v.float() for v in (x, weight, bias, s1, s2))
        with torch.autocast(device, enabled=False):
            scaled_weight, scaled_bias = weight * s1, bias * s1
            h, mean, rstd = torch.native_layer_norm(x, s2.shape, scaled_weight, scaled_bias, eps)
            h = h.addcmul_(x, s2).to(low).reshape(-1, s2.shape[0])
            w1, b1 = w1.to(low), b1.to(low)
            out = torch.addmm(b1, h, w1.t())
        ctx.save_for_backward(x, mean, rstd, weight, bias, s1, s2, scaled_weight, scaled_bias, h, w1)
        return out.view(*x.shape[:-1], -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, mean, rstd, weight, bias, s1, s2, scaled_weight, scaled_bias, h, w1 = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1]).to(h.dtype)
        grad_w1, grad_b1 = grad.t().mm(h), grad.sum(0)
        grad_h = grad.mm(w1).to(x.dtype).view(x.shape)
        grad_x, grad_sw, grad_sb = torch.ops.aten.native_layer_norm_backward(
            grad_h, x, s2.shape, mean, rstd, scaled_weight, scaled_bias, (True, True, True))
        rows = tuple(range(x.ndim - 1))
        grads = (grad_x.addcmul_(grad_h, s2), grad_sw * s1, grad_sb * s1, grad_sw * weight + grad_sb * bias,
                 (grad_h * x).sum(rows), grad_w1, grad_b1)
        x_, w_, b_, s1_, s2_, w1_, b1_ = (g.to(dtype) for g, dtype in zip(grads, ctx.dtypes))
        return x_, w_, b_, s1_, s2_, None, w1_, b1_


class MonaUp(torch.autograd.Function):
    """project2(dropout(gelu(g + projector(g)))) over the last dimension: forward two addmm (the
    identity folded into the projector's weight), gelu and dropout; backward their hand-written
    gradients. In autocast's type under autocast, as F.linear would."""

    @staticmethod
    def forward(ctx, g, wp, bp, w2, b2, p):
        ctx.dtypes = (g.dtype, wp.dtype, bp.dtype, w2.dtype, b2.dtype)
        device = g.device.type
        low = computing_dtype(device, g.dtype)
        g, wp, bp, w2, b2 = (v.to(low) for v in (g, wp, bp, w2, b2))
        with torch.autocast(device, enabled=False):
            g2 = g.reshape(-1, g.shape[-1])
            wp = wp + torch.eye(wp.shape[0], dtype=wp.dtype, device=wp.device)
            q = torch.addmm(bp, g2, wp.t())
            d, mask = torch.native_dropout(F.gelu(q), p, True) if p > 0 else (F.gelu(q), None)
            out = torch.addmm(b2, d, w2.t())
        ctx.p, ctx.shape = p, g.shape
        ctx.save_for_backward(g2, wp, q, d, mask, w2)
        return out.view(*g.shape[:-1], -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        g2, wp, q, d, mask, w2 = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1]).to(d.dtype)
        grad_w2, grad_b2 = grad.t().mm(d), grad.sum(0)
        grad_d = grad.mm(w2)
        if mask is not None:
            grad_d = torch.ops.aten.native_dropout_backward(grad_d, mask, 1.0 / (1.0 - ctx.p))
        grad_q = torch.ops.aten.gelu_backward(grad_d, q)
        grad_wp, grad_bp = grad_q.t().mm(g2), grad_q.sum(0)
        grad_g = grad_q.mm(wp)
        grads = (grad_g, grad_wp, grad_bp, grad_w2, grad_b2)
        g_, wp_, bp_, w2_, b2_ = (v.to(dtype) for v, dtype in zip(grads, ctx.dtypes))
        return g_.view(ctx.shape), wp_, bp_, w2_, b2_, None


@register_method("mona", MonaConfig, "multi-cognitive visual adapter (3/5/7 depthwise filters) after attention and MLP")
def attach(model: nn.Module, cfg: MonaConfig) -> None:
    if cfg.mona_conv not in TEMPORAL:
        raise ValueError(f"mona_conv: {cfg.mona_conv!r}; choose 2d or 3d")
    if cfg.mona_dim < 1:
        raise ValueError(f"mona_dim must be >= 1, got {cfg.mona_dim}")
    for block in list(blocks(model)):
        for slot in ("post_attn", "post_mlp"):
            mona = Mona(block.token_layout, block_width(block), cfg.mona_dim, TEMPORAL[cfg.mona_conv], cfg.mona_dropout)
            fill_slot(block, slot, mona, "mona")
