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
    """The reference's MonaOp on (B, T, H, W, C) channels-last tensors."""

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
        g = depthwise_conv(g, *self.depthwise_kernel())
        # g + projector(g) as one product: the identity folded into the 1x1 weight
        weight = self.projector.weight.flatten(1)
        return F.linear(g, weight + torch.eye(weight.shape[0], device=weight.device, dtype=weight.dtype),
                        self.projector.bias)


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
        norm = self.norm
        h = ScaledNormPlusInput.apply(grid, norm.weight, norm.bias, self.gamma, self.gammax, norm.eps)
        return self.project2(self.dropout(F.gelu(self.adapter_conv(self.project1(h)))))


class ScaledNormPlusInput(torch.autograd.Function):
    """s1 * LN(x) + s2 * x over the last dimension, with s1 folded into the norm's affine: forward one
    LayerNorm and an in-place addcmul; backward one LayerNorm backward, s2 * grad added into its input
    gradient in place and s2's gradient one product summed. Autograd's graph of layer_norm + addcmul
    took some twice the passes over the full-width stream (a multiply by addcmul's scalar, two input
    gradients added; Swin-T stage 1 measured 3.1 against 1.7 ms forward + backward on CPU). Under
    autocast it computes in float32, as layer_norm and the addcmul after it did."""

    @staticmethod
    def forward(ctx, x, weight, bias, s1, s2, eps):
        ctx.dtypes = (x.dtype, weight.dtype, bias.dtype, s1.dtype, s2.dtype)
        device = x.device.type
        if torch.is_autocast_enabled(device):
            x, weight, bias, s1, s2 = (v.float() for v in (x, weight, bias, s1, s2))
        with torch.autocast(device, enabled=False):
            scaled_weight, scaled_bias = weight * s1, bias * s1
            out, mean, rstd = torch.native_layer_norm(x, s2.shape, scaled_weight, scaled_bias, eps)
        ctx.save_for_backward(x, mean, rstd, weight, bias, s1, s2, scaled_weight, scaled_bias)
        return out.addcmul_(x, s2)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, mean, rstd, weight, bias, s1, s2, scaled_weight, scaled_bias = ctx.saved_tensors
        grad = grad.to(x.dtype)
        grad_x, grad_sw, grad_sb = torch.ops.aten.native_layer_norm_backward(
            grad, x, s2.shape, mean, rstd, scaled_weight, scaled_bias, (True, True, True))
        rows = tuple(range(x.ndim - 1))
        grads = (grad_x.addcmul_(grad, s2), grad_sw * s1, grad_sb * s1, grad_sw * weight + grad_sb * bias,
                 (grad * x).sum(rows))
        return (*(g.to(dtype) for g, dtype in zip(grads, ctx.dtypes)), None)


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
