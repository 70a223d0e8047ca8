"""Depthwise 3-D convolution of a channels-last token grid (B, T, H, W, C) without Conv3d.

`F.conv3d(grid.movedim(-1, 1), weight, bias, padding=k // 2, groups=C).movedim(1, -1)` is what the
grid adapters compute, but depthwise Conv3d has no fast kernel (cuDNN has no depthwise 3-D path,
so CUDA falls back to a naive one; on CPU it measured 2-3x slower than the forms here) and the
(B, C, T, H, W) layout costs permute copies. The same sum is taken here with 2-D convolutions on
channels-last views (no copy in or out), whose depthwise kernels both devices have:

- a temporal kernel (kt, 1, 1): one depthwise conv2d over the (T, H·W) plane with a (kt, 1) kernel
  ("conv2d"), or on CUDA the sum of kt time-shifted slices times per-channel taps ("shifts": a
  few memory-bound elementwise kernels, no cuDNN algorithm choice to go wrong);
- a spatial or spatio-temporal kernel (kt, kh, kw): one depthwise conv2d per temporal tap over
  every frame at once, the taps' outputs added with their time shifts.

benchmarks/grid_ops.py times every form against Conv3d on the device at hand.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# the temporal-kernel form per device type: measured on CPU (benchmarks/grid_ops.py); on CUDA the
# form whose cost is bounded by memory bandwidth whatever cuDNN picks
TEMPORAL_FORM = {"cpu": "conv2d", "cuda": "shifts"}
FORMS = ("conv2d", "shifts")


def depthwise_conv(grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   form: str | None = None) -> torch.Tensor:
    """Depthwise convolution of `grid` (B, T, H, W, C) with `weight` (C, 1, kt, kh, kw), odd sizes,
    zero padding k // 2 (output the grid's shape), as Conv3d(C, C, k, padding=k // 2, groups=C).
    `form` ("conv2d" or "shifts", temporal kernels only) defaults to TEMPORAL_FORM of the device."""
    b, t, h, w, c = grid.shape
    kt, kh, kw = weight.shape[2:]
    if kh == kw == 1:
        form = form or TEMPORAL_FORM.get(grid.device.type, "conv2d")
        if form == "shifts":
            taps = weight.reshape(c, kt).to(grid.dtype)
            products = [grid * taps[:, i] if i != kt // 2 else None for i in range(kt)]
            centre = grid * taps[:, kt // 2] if bias is None else torch.addcmul(bias.to(grid.dtype), grid, taps[:, kt // 2])
            products[kt // 2] = centre
            return add_shifted(centre, products)
        plane = grid.reshape(b, t, h * w, c).permute(0, 3, 1, 2)  # (B, C, T, H·W), channels-last: a view
        out = F.conv2d(plane, weight[..., 0], bias, padding=(kt // 2, 0), groups=c)
        return out.permute(0, 2, 3, 1).reshape(b, t, h, w, c)
    frames = grid.reshape(b * t, h, w, c).permute(0, 3, 1, 2)  # every frame, channels-last: a view
    taps = [F.conv2d(frames, weight[:, :, i], bias if i == kt // 2 else None, padding=(kh // 2, kw // 2), groups=c)
            .permute(0, 2, 3, 1).reshape(b, t, h, w, c) for i in range(kt)]
    return add_shifted(taps[kt // 2], taps)


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
