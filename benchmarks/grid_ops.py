"""The grid adapters' depthwise convolutions, every exact form against Conv3d, on the device at hand:
forward + backward (input, weight and bias gradients) of `grid_conv.depthwise_conv` in each form and of
the Conv3d it replaced, alternated round by round, at the token grids of ViT-B 16x224 and Swin-B 8x224
(batch 4, the issue's) with ST-Adapter's and Mona's kernels.

    python benchmarks/grid_ops.py [--amp bf16] [--rounds 10] [--json PATH]
    python benchmarks/grid_ops.py --compile inductor --cases "mona-3d vit-b"   # each form also compiled
    python benchmarks/grid_ops.py --quick          # small grids: a CPU smoke test

Prints one line per case: each form's median time, its ratio to Conv3d (median of in-round ratios), its
largest difference from Conv3d in fp32 (with --amp: the rounding of each form in that type), and the
forms `depthwise_conv` picks on this device (grid_conv.DEFAULT_FORMS).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from vidpeft.bench.worker import alternated_all, median_ratio
from vidpeft.fileio import write_atomic
from vidpeft.methods.grid_conv import DEFAULT_FORMS, FORMS, depthwise_conv

# (name, grid (B, T, H, W, C), kernel (kt, kh, kw)): ViT-B 16x224 is 8x14x14 tokens; Swin-B 8x224 stage 1 is 4x56x56
CASES = [
    ("st-adapter vit-b", (4, 8, 14, 14, 384), (3, 1, 1)),
    ("st-adapter swin-b stage 1", (4, 4, 56, 56, 64), (3, 1, 1)),
    ("mona-2d vit-b", (4, 8, 14, 14, 64), (1, 7, 7)),
    ("mona-3d vit-b", (4, 8, 14, 14, 64), (3, 7, 7)),
    ("mona-2d swin-b stage 1", (4, 4, 56, 56, 64), (1, 7, 7)),
    ("mona-3d swin-b stage 1", (4, 4, 56, 56, 64), (3, 7, 7)),
]
QUICK = [(name, (1, shape[1], 7, 7, 16), kernel) for name, shape, kernel in CASES[::2]]


def conv3d(grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """What the adapters computed before: Conv3d on the (B, C, T, H, W) view."""
    padding = tuple(k // 2 for k in weight.shape[2:])
    return F.conv3d(grid.movedim(-1, 1), weight, bias, padding=padding, groups=grid.shape[-1]).movedim(1, -1)


def default_forms(device: torch.device) -> dict[str, str]:
    return DEFAULT_FORMS.get(device.type, DEFAULT_FORMS["cpu"])


def forms_for(kernel: tuple[int, int, int], backend: str | None) -> dict[str, object]:
    """Conv3d and every form of depthwise_conv for the kernel's kind; with a backend, each also
    torch.compile'd ("<form>+compile": what a --compile run executes)."""
    fns = {"conv3d": conv3d}
    for form in FORMS["temporal" if kernel[1:] == (1, 1) else "spatial"]:
        fns[form] = lambda g, w, b, form=form: depthwise_conv(g, w, b, form=form)
    if backend:
        torch._dynamo.reset()  # every form is one more graph of depthwise_conv: each case starts afresh
        fns.update({f"{form}+compile": torch.compile(fn, backend=backend) for form, fn in list(fns.items())})
    return fns


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="autocast dtype (default fp32)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--quick", action="store_true", help="small grids: a CPU smoke test")
    parser.add_argument("--cases", nargs="+", help="only these cases (names as printed), e.g. 'mona-3d vit-b'")
    parser.add_argument("--compile", metavar="BACKEND",
                        help="also time each form compiled with this torch.compile backend (e.g. inductor)")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch._dynamo.config.cache_size_limit = 64  # a graph per form and grad mode, not eager after 8
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"{device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), {args.amp or 'fp32'}, "
          f"torch {torch.__version__}; forward + backward, median of {args.rounds} alternated rounds; "
          f"depthwise_conv's forms here: {default_forms(device)}")
    known = QUICK if args.quick else CASES
    cases = [case for case in known if not args.cases or case[0] in args.cases]
    if not cases:
        parser.error(f"--cases: none of {args.cases} is one of {[name for name, _, _ in known]}")
    results = []
    for name, shape, kernel in cases:
        generator = torch.Generator().manual_seed(0)
        # the grid in the autocast type, as the adapters' first Linear hands it over
        grid = torch.randn(shape, generator=generator).to(device, dtype or torch.float32).requires_grad_()
        weight = (torch.randn(shape[-1], 1, *kernel, generator=generator) * 0.1).to(device).requires_grad_()
        bias = torch.randn(shape[-1], generator=generator).to(device).requires_grad_()
        seed = torch.randn(shape, generator=generator).to(device)
        fns = forms_for(kernel, args.compile)

        def run(fn):
            def once() -> None:
                with torch.autocast(device.type, dtype, enabled=dtype is not None):
                    out = fn(grid, weight, bias)
                out.backward(seed.to(out.dtype))
                sync()
            return once

        with torch.no_grad():  # each form's rounding against Conv3d in fp32
            reference = conv3d(grid.float(), weight, bias)
            with torch.autocast(device.type, dtype, enabled=dtype is not None):
                error = {k: (fn(grid, weight, bias).float() - reference).abs().max().item() for k, fn in fns.items()}
        times = dict(zip(fns, alternated_all([run(fn) for fn in fns.values()], args.rounds)))
        row = {"case": name, "grid": list(shape), "kernel": list(kernel), "forms": {}}
        for form, t in times.items():
            row["forms"][form] = {"median_s": statistics.median(x["median_s"] for x in t),
                                  "vs_conv3d": median_ratio(t, times["conv3d"]), "max_abs_diff": error[form]}
        results.append(row)
        print(f"{name} {tuple(shape)} kernel {kernel}: " + "; ".join(
            f"{form} {v['median_s'] * 1e3:.3f} ms ({v['vs_conv3d']:.2f}× conv3d, |diff| {v['max_abs_diff']:.1e})"
            for form, v in row["forms"].items()), flush=True)
        out = {"device": str(device), "amp": args.amp, "torch": torch.__version__, "rounds": args.rounds,
               "compile": args.compile, "default_forms": default_forms(device), "results": results}
        if args.json:  # after every case: a run stopped by a time cap keeps the cases it finished
            write_atomic(Path(args.json), json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
