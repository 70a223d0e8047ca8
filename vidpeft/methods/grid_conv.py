"""Depthwise 3-D convolution of a channels-last token grid (B, T, H, W, C) without Conv3d.

`F.conv3d(grid.movedim(-1, 1), weight, bias, padding=k // 2, groups=C).movedim(1, -1)` is what the
grid adapters compute, but depthwise Conv3d has no fast kernel on CUDA (cuDNN has no depthwise 3-D
path, so CUDA falls back to a naive one), on CPU only its channels-last forward is fast (autograd's
Conv3d backward measured 2-20x slower than the forms here), and the (B, C, T, H, W) layout costs
permute copies. The same sum is taken here on channels-last views (no copy in or out):

- a temporal kernel (kt, 1, 1): one depthwise conv2d over the (T, H·W) plane with a (kt, 1) kernel
  ("conv2d"), or the sum of kt time-shifted slices times per-channel taps ("shifts": a few
  memory-bound elementwise kernels, no cuDNN algorithm choice to go wrong);
- a spatial or spatio-temporal kernel (kt, kh, kw): one depthwise conv2d per temporal tap over
  every frame at once, the taps' outputs added with their time shifts ("conv2d", autograd's
  backward), or Conv3d itself on the grid's channels-last view with a hand-written backward
  ("conv3d-cl", DepthwiseConv3d: the input gradient the same Conv3d with the kernel flipped, the
  weight gradient a depthwise Conv3d itself), or the sum over every tap of the zero-padded grid
  shifted by it times the tap's weights ("shifts": elementwise only, a kernel per tap eager, which
  torch.compile can fuse into one; benchmarks/grid_ops.py --compile measures it so).

DEFAULT_FORMS picks per device; benchmarks/grid_ops.py times every form against Conv3d on the device
at hand (on a GPU: part 3 of benchmarks/gpu_check.sh).
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

FORMS = {"temporal": ("conv2d", "shifts"), "spatial": ("conv2d", "conv3d-cl", "shifts")}
# per device type: on CPU the forms measured fastest (README, "Issue 24 on CPU"); on CUDA, not yet
# measured, the temporal form whose cost is bounded by memory bandwidth whatever cuDNN picks, and
# cuDNN's own convolution backward
DEFAULT_FORMS = {"cpu": {"temporal": "conv2d", "spatial": "conv3d-cl"},
                 "cuda": {"temporal": "shifts", "spatial": "conv2d"}}


def depthwise_conv(grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   form: str | None = None) -> torch.Tensor:
    """Depthwise convolution of `grid` (B, T, H, W, C) with `weight` (C, 1, kt, kh, kw), odd sizes,
    zero padding k // 2 (output the grid's shape), as Conv3d(C, C, k, padding=k // 2, groups=C).
    `form`: one of FORMS for the kernel's kind; default DEFAULT_FORMS of the grid's device."""
    b, t, h, w, c = grid.shape
    kt, kh, kw = weight.shape[2:]
    kind = "temporal" if kh == kw == 1 else "spatial"
    form = form or DEFAULT_FORMS.get(grid.device.type, DEFAULT_FORMS["cpu"])[kind]
    if form not in FORMS[kind]:
        raise ValueError(f"depthwise_conv: form {form!r} is not one of {FORMS[kind]} for a {kind} kernel")
    if form == "shifts" and kind == "spatial":
        return padded_taps(grid, weight, bias)
    if form == "shifts":
        taps = weight.reshape(c, kt).to(grid.dtype)
        products = [grid * taps[:, i] if i != kt // 2 else None for i in range(kt)]
        centre = grid * taps[:, kt // 2] if bias is None else torch.addcmul(bias.to(grid.dtype), grid, taps[:, kt // 2])
        products[kt // 2] = centre
        return add_shifted(centre, products)
    if kind == "temporal":
        plane = grid.reshape(b, t, h * w, c).permute(0, 3, 1, 2)  # (B, C, T, H·W), channels-last: a view
        out = F.conv2d(plane, weight[..., 0], bias, padding=(kt // 2, 0), groups=c)
        return out.permute(0, 2, 3, 1).reshape(b, t, h, w, c)
    return DepthwiseConv3d.apply(grid, weight, bias) if form == "conv3d-cl" else frame_taps(grid, weight, bias)


def frame_taps(grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A depthwise conv2d per temporal tap over every frame at once, the taps added with their time shifts."""
    b, t, h, w, c = grid.shape
    kt, kh, kw = weight.shape[2:]
    frames = grid.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # every frame, channels-last: a view
    taps = [F.conv2d(frames, weight[:, :, i], bias if i == kt // 2 else None, padding=(kh // 2, kw // 2), groups=c)
            .permute(0, 2, 3, 1).reshape(b, t, h, w, c) for i in range(kt)]
    return add_shifted(taps[kt // 2], taps)


def padded_taps(grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Every tap's (dt, dy, dx) slice of the zero-padded grid times its per-channel weight, summed."""
    b, t, h, w, c = grid.shape
    kt, kh, kw = weight.shape[2:]
    padded = F.pad(grid, (0, 0, kw // 2, kw // 2, kh // 2, kh // 2, kt // 2, kt // 2))
    taps = weight.reshape(c, kt * kh * kw).t().to(grid.dtype)
    out = grid.new_zeros(grid.shape) if bias is None else bias.to(grid.dtype).expand(grid.shape)
    for i, (dt, dy, dx) in enumerate(itertools.product(range(kt), range(kh), range(kw))):
        out = out + padded[:, dt:dt + t, dy:dy + h, dx:dx + w] * taps[i]
    return out


def channels_last_conv3d(grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Conv3d on the grid's (B, C, T, H, W) view, which is channels-last 3-D: no copy in or out."""
    kt, kh, kw = weight.shape[2:]
    out = F.conv3d(grid.movedim(-1, 1), weight, bias, padding=(kt // 2, kh // 2, kw // 2), groups=grid.shape[-1])
    return out.movedim(1, -1)


class DepthwiseConv3d(torch.autograd.Function):
    """channels_last_conv3d with a hand-written backward, saving only the input. On CPU oneDNN's
    channels-last depthwise Conv3d forward is fast (2-3x the per-tap conv2ds at Mona's (3, 7, 7)); its
    backward is what measured 2-20x slower. So the input gradient is the same forward on the output
    gradient with the kernel flipped in all three dimensions (a zero-padded convolution's adjoint), and
    the weight gradient is conv3d_weight_grad. Under autocast it computes in autocast's type, as
    F.conv3d would."""

    @staticmethod
    def forward(ctx, grid, weight, bias):
        ctx.dtypes = (grid.dtype, weight.dtype, None if bias is None else bias.dtype)
        device = grid.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            grid, weight, bias = (None if v is None else v.to(dtype) for v in (grid, weight, bias))
        ctx.save_for_backward(grid, weight)
        with torch.autocast(device, enabled=False):
            return channels_last_conv3d(grid, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        grid, weight = ctx.saved_tensors
        grad = grad.to(grid.dtype)
        grid_dtype, weight_dtype, bias_dtype = ctx.dtypes
        grad_grid = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_grid = channels_last_conv3d(grad, weight.flip(2, 3, 4), None).to(grid_dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = conv3d_weight_grad(grid, grad, weight.shape[2:]).to(weight_dtype)
        if bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 1, 2, 3)).to(bias_dtype)
        return grad_grid, grad_weight, grad_bias


def conv3d_weight_grad(grid: torch.Tensor, grad: torch.Tensor, kernel: tuple[int, int, int]) -> torch.Tensor:
    """The weight gradient (C, 1, kt, kh, kw) of a depthwise Conv3d as a depthwise Conv3d itself: every
    (sample, channel) its own group, the zero-padded input convolved with the output gradient as the
    kernel, summed over samples (oneDNN's depthwise weight-gradient kernel measured 3-6x slower). The
    input goes channels-last ((T, H, W) rows of B·C values: a copy of C-long runs, not a transpose);
    the output gradient transposed, as the kernel."""
    b, t, h, w, c = grid.shape
    kt, kh, kw = kernel
    pt, ph, pw = kt // 2, kh // 2, kw // 2
    padded = grid.new_zeros(1, t + 2 * pt, h + 2 * ph, w + 2 * pw, b, c)
    padded[0, pt:pt + t, ph:ph + h, pw:pw + w] = grid.permute(1, 2, 3, 0, 4)
    padded = padded.view(1, t + 2 * pt, h + 2 * ph, w + 2 * pw, b * c).permute(0, 4, 1, 2, 3)
    kernels = grad.permute(0, 4, 1, 2, 3).reshape(b * c, 1, t, h, w)
    return F.conv3d(padded, kernels, groups=b * c).reshape(b, c, kt, kh, kw).sum(0).unsqueeze(1)


def add_shifted(out: torch.Tensor, taps: list[torch.Tensor]) -> torch.Tensor:
    """out[:, t] += taps[i][:, t + i - len(taps) // 2] for every tap but the centre one (zero outside
    the clip), in place on `out` (a fresh tensor: nothing saved for backward reads it); (B, T, ...)."""
    centre, frames = len(taps) // 2, out.shape[1]
    for i, tap in enumerate(taps):
        shift = i - centre
        if shift == 0 or abs(shift) >= frames:
            continue
        if shift < 0:
            out[:, -shift:] += tap[:, :frames + shift]
        else:
            out[:, :frames - shift] += tap[:, shift:]
    return out
