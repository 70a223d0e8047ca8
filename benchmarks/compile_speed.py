"""`--compile` against eager in the training path vidpeft-train takes: the step (forward, backward and
the engine's AdamW) of a backbone with each method given, eager and compiled models with the same
weights in one process, every step alternated round by round.

    python benchmarks/compile_speed.py [--backbone videomae-b --method full lora --frames 16 --batch 8]
    python benchmarks/compile_speed.py --quick      # videomae-micro 8x64x64, aot_eager backend

Prints per method the compilation time (the first training steps, and the first evaluation forward:
no_grad, another batch size), each step's median time and MFU (FLOPs from torch's counter over the
time, against a matrix product timed on the device), compiled / eager, each compiled step against
the compiled full fine-tuning step, how far compiled logits are from eager, and whether switching
back to training after evaluation compiled anything again. `--json PATH` also writes them.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch._dynamo.utils import counters

NUM_CLASSES = 174


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="videomae-b")
    parser.add_argument("--method", nargs="+", default=["full", "lora"], help="methods (default: full lora)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed rounds: every step once a round, the order alternating")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--amp", choices=["auto", "bf16", "fp16", "none"], default="auto",
                        help="autocast type; auto: vidpeft-train's default (fp16 on GPU, bf16 on a CPU with native bf16, else none)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--quick", action="store_true", help="videomae-micro, 8x64x64, aot_eager: a CPU smoke test")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.backbone, args.frames, args.size, args.backend = "videomae-micro", 8, 64, "aot_eager"
    from vidpeft.bench.flops import matrix_rate
    from vidpeft.bench.worker import alternated_all, median_ratio
    from vidpeft.engine.precision import autocast, precision_name

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    amp, scaler = autocast(device, True if args.amp == "auto" else args.amp)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, generator=generator).to(device)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator).to(device)
    evaluation = torch.cat((x, x))[: args.batch + 1]  # another batch size, as multi-view scoring has

    steps, results = {}, {}
    for method in args.method:
        result, eager_step, compiled_step = prepare(method, args.backbone, args.backend, x, y, evaluation, amp,
                                                    scaler, sync)
        results[method] = result
        steps[(method, "eager")], steps[(method, "compiled")] = eager_step, compiled_step
        print(f"{args.backbone} + {method}: compiling took {result['compile_seconds']['training']:.0f} s (training) + "
              f"{result['compile_seconds']['evaluation']:.0f} s (evaluation); max |logit diff| "
              f"{result['max_abs_logit_diff']:.2e}", flush=True)

    times = dict(zip(steps, alternated_all(list(steps.values()), args.steps)))
    rate = matrix_rate(device, getattr(amp, "fast_dtype", torch.float32))
    for (method, mode), measured in times.items():
        seconds = statistics.median(t["median_s"] for t in measured)
        results[method][f"{mode}_step_s"] = seconds
        results[method][f"{mode}_mfu"] = results[method]["flops"] / seconds / rate
    ratio = {m: median_ratio(times[(m, "compiled")], times[(m, "eager")]) for m in args.method}
    vs_full = ({m: median_ratio(times[(m, "compiled")], times[("full", "compiled")]) for m in args.method
                if m != "full"} if "full" in args.method else {})
    recompiled = {m: results[m].pop("recompiled") for m in args.method}
    load = os.getloadavg()
    report = {
        "backbone": args.backbone, "methods": results, "input": [args.batch, 3, args.frames, args.size, args.size],
        "device": str(device), "backend": args.backend, "amp": args.amp, "precision": precision_name(amp),
        "threads": torch.get_num_threads(), "matrix_tflops": rate / 1e12, "ratio": ratio,
        "compiled_vs_full": vs_full, "recompiled_after_evaluation": recompiled, "load_average": load,
    }
    print(f"\nbatch {args.batch} x 3 x {args.frames} x {args.size}^2, {device}, {args.amp} ({report['precision']}), "
          f"backend {args.backend}; medians of {args.steps} alternating rounds; MFU against {rate / 1e12:.2f} TFLOP/s "
          f"measured here; load average {load[0]:.2f} on {os.cpu_count()} cores")
    for method, r in results.items():
        print(f"--compile / eager training step, {method}: {ratio[method]:.2f}x ({r['compiled_step_s']:.4f} vs "
              f"{r['eager_step_s']:.4f} s; MFU {r['compiled_mfu']:.1%} compiled, {r['eager_mfu']:.1%} eager)")
    if vs_full:
        print("compiled step / compiled full fine-tuning step: "
              + ", ".join(f"{m} {v:.2f}x" for m, v in vs_full.items()))
    print("compiled again when training resumed after evaluation: "
          + ", ".join(f"{m} {'yes' if v else 'no'}" for m, v in recompiled.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def prepare(method: str, backbone: str, backend: str, x: torch.Tensor, y: torch.Tensor, evaluation: torch.Tensor,
            amp, scaler, sync) -> tuple[dict, Callable[[], None], Callable[[], None]]:
    """Eager and compiled models of `method` (same weights), each with the engine's optimiser: the
    compiled one's logits against eager's (its evaluation graph compiled, timed), its training steps
    compiled (timed), then evaluation and training again, counting the graphs that compiled."""
    from vidpeft.bench.flops import count_flops
    from vidpeft.model import build_model, compile_model

    eager = build_model(backbone, method, num_classes=NUM_CLASSES, seed=0).to(x.device)
    compiled = compile_model(copy.deepcopy(eager), backend)
    start = time.perf_counter()
    logits = evaluate(compiled, evaluation, amp, sync)
    evaluation_s = time.perf_counter() - start
    logit_gap = (logits - evaluate(eager, evaluation, amp, sync)).abs().max().item()
    eager_step, compiled_step = (stepper(model, x, y, amp, scaler, sync) for model in (eager, compiled))
    start = time.perf_counter()
    compiled_step()
    compiled_step()  # graphs for the step and its warm-up
    training_s = time.perf_counter() - start
    graphs = counters["stats"]["unique_graphs"]
    evaluate(compiled, evaluation, amp, sync)
    compiled_step()
    eager_step()
    flops = count_flops(lambda: forward_backward(eager, x, y, amp))
    eager.zero_grad(set_to_none=True)
    return ({"compile_seconds": {"training": training_s, "evaluation": evaluation_s}, "flops": flops,
             "max_abs_logit_diff": logit_gap, "recompiled": counters["stats"]["unique_graphs"] > graphs},
            eager_step, compiled_step)


def evaluate(model: torch.nn.Module, clips: torch.Tensor, amp, sync) -> torch.Tensor:
    """Logits of the model in eval mode under no_grad (as scoring runs it), left in train mode."""
    with torch.no_grad(), amp:
        logits = model.eval()(clips).float()
    sync()
    model.train()
    return logits


def forward_backward(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp, scaler=None) -> None:
    with amp:
        loss = F.cross_entropy(model(x), y)
    (loss if scaler is None else scaler.scale(loss)).backward()


def stepper(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp, scaler, sync) -> Callable[[], None]:
    """vidpeft-train's step: the engine's optimiser (fused kernels, its parameter groups), and for fp16
    a gradient scaler of its own."""
    from vidpeft.bench.worker import our_optimizer

    optimizer = our_optimizer(model)
    scaler = None if scaler is None else torch.amp.GradScaler(x.device.type)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward_backward(model, x, y, amp, scaler)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        sync()

    return step


if __name__ == "__main__":
    main()
