"""Depthwise 3-D convolution of a channels-last token grid (B, T, H, W, C) without Conv3d.

`F.conv3d(grid.movedim(-1, 1), weight, bias, padding=k // 2, groups=C).movedim(1, -1)` is what the
grid adapters compute, but depthwise Conv3d has no fast kernel (cuDNN has no depthwise 3-D path,
so CUDA falls back to a naive one; on CPU it measured 2-20x slower than the forms here) and the
(B, C, T, H, W) layout costs permute copies. The same sum is taken here with 2-D convolutions on
channels-last views (no copy in or out), whose depthwise kernels both devices have:

- a temporal kernel (kt, 1, 1): one depthwise conv2d over the (T, H·W) plane with a (kt, 1) kernel
  ("conv2d"), or the sum of kt time-shifted slices times per-channel taps ("shifts": a few
  memory-bound elementwise kernels, no cuDNN algorithm choice to go wrong);
- a spatial or spatio-temporal kernel (kt, kh, kw): one depthwise conv2d per temporal tap over
  every frame at once, the taps' outputs added with their time shifts, the weight gradient by
  autograd's convolution backward ("conv2d") or as a depthwise convolution itself ("conv2d-wgrad",
  DepthwiseConv2d).

DEFAULT_FORMS picks per device; benchmarks/grid_ops.py times every form against Conv3d on the device
at hand (on a GPU: part 3 of benchmarks/gpu_check.sh).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

FORMS = {"temporal": ("conv2d", "shifts"), "spatial": ("conv2d", "conv2d-wgrad")}
# per device type: on CPU the forms measured fastest (README, "Issue 24 on CPU"); on CUDA, not yet
# measured, the temporal form whose cost is bounded by memory bandwidth whatever cuDNN picks, and
# cuDNN's own convolution backward
DEFAULT_FORMS = {"cpu": {"temporal": "conv2d", "spatial": "conv2d-wgrad"},
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
    frames = grid.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # every frame, channels-last: a view
    conv = DepthwiseConv2d.apply if form == "conv2d-wgrad" else conv2d
    taps = [conv(frames, weight[:, :, i], bias if i == kt // 2 else None, (kh // 2, kw // 2))
            .permute(0, 2, 3, 1).reshape(b, t, h, w, c) for i in range(kt)]
    return add_shifted(taps[kt // 2], taps)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int]) -> torch.Tensor:
    return F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])


class DepthwiseConv2d(torch.autograd.Function):
    """A depthwise conv2d whose weight gradient is itself a depthwise convolution: every (sample,
    channel) its own group, the zero-padded input convolved with that channel's output gradient as
    the kernel, summed over samples; the input gradient is the backend's. On CPU oneDNN's depthwise
    weight-gradient kernel measured 3-6x slower than this on Mona's 7x7 filters; kept for frame-sized
    kernels (the temporal form's output gradient spans the whole (T, H·W) plane, a kernel that large
    oneDNN convolves slowly). Under autocast it computes in autocast's type, as F.conv2d would."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        device = x.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            x, weight, bias = (None if v is None else v.to(dtype) for v in (x, weight, bias))
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        with torch.autocast(device, enabled=False):
            return conv2d(x, weight, bias, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        n, c, h, w = x.shape
        (ph, pw), kernel = ctx.padding, weight.shape[2:]
        grad = grad.to(x.dtype)
        x_dtype, weight_dtype, bias_dtype = ctx.dtypes
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, (1, 1), (ph, pw), (1, 1), False, (0, 0), c, (True, False, False))[0].to(x_dtype)
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (pw, pw, ph, ph)).contiguous().view(1, n * c, h + 2 * ph, w + 2 * pw)
            per_sample = F.conv2d(padded, grad.contiguous().view(n * c, 1, *grad.shape[2:]), groups=n * c)
            grad_weight = per_sample.view(n, c, *kernel).sum(0).unsqueeze(1).to(weight_dtype)
        if bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3)).to(bias_dtype)
        return grad_x, grad_weight, grad_bias, None


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
