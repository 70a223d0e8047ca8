"""`--compile` against eager: the training step (forward, backward, AdamW step) of a backbone
with a method, both models with the same weights in one process, timed alternately.

    python benchmarks/compile_speed.py [--backbone videomae-b --method lora --frames 16 --size 224]
    python benchmarks/compile_speed.py --quick      # videomae-micro 8x64x64, aot_eager backend

Prints the compilation time (the first compiled steps), the median step time of each (steps
alternate, so both see the same load), their ratio, and how far the compiled loss and logits
are from eager on the same input. `--json PATH` also writes them.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="videomae-b")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed steps of each, alternating")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (default inductor)")
    parser.add_argument("--amp", choices=["auto", "bf16", "fp16", "none"], default="auto",
                        help="autocast type; auto: vidpeft-train's default (fp16 on GPU, bf16 on a CPU with native bf16, else none)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--quick", action="store_true", help="videomae-micro, 8x64x64, aot_eager: a CPU smoke test")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.backbone, args.frames, args.size, args.backend = "videomae-micro", 8, 64, "aot_eager"
    from vidpeft.engine.precision import autocast, precision_name
    from vidpeft.model import build_model, compile_model

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    amp, _ = autocast(device, True if args.amp == "auto" else args.amp)
    eager = build_model(args.backbone, args.method, num_classes=174, seed=0).to(device).train()
    compiled = compile_model(copy.deepcopy(eager), args.backend)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, generator=generator).to(device)
    y = torch.randint(0, 174, (args.batch,), generator=generator).to(device)

    with torch.no_grad(), amp:  # same weights, same input: how close are logits and loss?
        logits_eager, start = eager(x), time.perf_counter()
        logits_compiled = compiled(x)
        compile_infer_s = time.perf_counter() - start
        loss_gap = abs(F.cross_entropy(logits_compiled, y).item() - F.cross_entropy(logits_eager, y).item())
    logit_gap = (logits_compiled.float() - logits_eager.float()).abs().max().item()

    def stepper(model):
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step() -> float:
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with amp:
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            sync()
            return time.perf_counter() - start

        return step

    steps = {"eager": stepper(eager), "compiled": stepper(compiled)}
    compile_train_s = steps["compiled"]() + steps["compiled"]()  # graphs for the train step (and its warm-up)
    steps["eager"]()
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for i in range(args.steps):
        for name in (("eager", "compiled") if i % 2 == 0 else ("compiled", "eager")):
            times[name].append(steps[name]())
    eager_s, compiled_s = (statistics.median(times[n]) for n in ("eager", "compiled"))
    load = os.getloadavg()
    result = {
        "backbone": args.backbone, "method": args.method, "input": [args.batch, 3, args.frames, args.size, args.size],
        "device": str(device), "backend": args.backend, "amp": args.amp,
        "precision": precision_name(amp), "threads": torch.get_num_threads(),
        "compile_seconds": {"inference": compile_infer_s, "training": compile_train_s},
        "eager_step_s": eager_s, "compiled_step_s": compiled_s, "ratio": compiled_s / eager_s,
        "max_abs_logit_diff": logit_gap, "abs_loss_diff": loss_gap, "load_average": load,
    }
    print(f"{args.backbone} + {args.method}, batch {args.batch} x 3 x {args.frames} x {args.size}^2, {device}, "
          f"{args.amp} ({result['precision']}), backend {args.backend}: compiling took {compile_infer_s:.0f} s (inference) + "
          f"{compile_train_s:.0f} s (training)")
    print(f"--compile / eager training step: {result['ratio']:.2f}x ({compiled_s:.3f} vs {eager_s:.3f} s, medians "
          f"of {args.steps} alternating steps); max |logit diff| {logit_gap:.2e}, |loss diff| {loss_gap:.2e}; "
          f"load average {load[0]:.2f} on {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
