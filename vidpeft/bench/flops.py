"""Model FLOP utilisation: FLOPs of a step from torch.utils.flop_counter over its measured time,
against the matrix-product rate measured on the same device.

torch's counter is corrected in two places: a convolution's weight gradient is counted as its
forward (torch counts a grouped one as dense, `groups` times too much: 64x on a Mona filter), and
the CPU's fused attention, which it does not know, counts as the CUDA kernels do."""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils import flop_counter as fc

aten = torch.ops.aten


def _conv_backward(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                   _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """Each of the input and weight gradients costs what the forward did (grouped or not)."""
    forward = fc.conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (bool(output_mask[0]) + bool(output_mask[1]))


def _sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


CORRECTIONS = {
    aten.convolution_backward: _conv_backward,
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward,
}


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations (a multiply-add is 2) of the matrix products, convolutions and
    attention `fn` runs; elementwise work is not counted, as in every MFU figure."""
    with fc.FlopCounterMode(display=False, custom_mapping=CORRECTIONS) as counter:
        fn()
    return counter.get_total_flops()


def matrix_rate(device: torch.device, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """FLOP/s of square matrix products of `dtype` on `device` (4096 on a GPU, 1024 on CPU),
    the best of repeated timed batches after a warm-up."""
    n = 4096 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best, spent, repeats = float("inf"), 0.0, 1
    while spent < seconds:
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        sync()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed / repeats), spent + elapsed
        repeats = min(repeats * 2, 64)
    return 2 * n**3 / best
