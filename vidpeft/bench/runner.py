"""Run every case in a fresh worker process, record failures and go on, collect one run."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict

from . import report
from .flops import matrix_rate
from .measure import load_average, run_fresh
from ..backbones import backbone_info
from .worker import HF_PEFT, HF_PEFT_FAMILY, PEFT_EQUIVALENTS, Case

WORKER = "vidpeft.bench.worker"


def unsupported(backbones: list[str], methods: list[str], options: dict[str, dict]) -> set[tuple[str, str]]:
    """(backbone, method) pairs whose method refuses the backbone in attach, each said on stderr."""
    from ..model import refusal

    pairs = set()
    for backbone in backbones:
        for method in methods:
            reason = refusal(backbone, method, **options.get(method, {}))
            if reason is not None:
                print(f"skipped {backbone} {method}: {reason}", file=sys.stderr, flush=True)
                pairs.add((backbone, method))
    return pairs


def cases_for(backbones: list[str], methods: list[str], compare_peft: bool, frames: dict[str, int],
              options: dict[str, dict], skip: set[tuple[str, str]] = frozenset(), **common) -> list[Case]:
    """Full fine-tuning first (every ratio needs it), then the methods; transformers + peft right
    after each of our methods it has an equivalent of, on VideoMAE."""
    ordered = (["full"] if "full" in methods else []) + [m for m in methods if m != "full"]
    cases = []
    for backbone in backbones:
        for method in (m for m in ordered if (backbone, m) not in skip):
            own = options.get(method, {})
            cases.append(Case(backbone, method, frames[backbone], options=own, **common))
            if method in PEFT_EQUIVALENTS and compare_peft and backbone_info(backbone).family == HF_PEFT_FAMILY:
                cases.append(Case(backbone, method, frames[backbone], impl=HF_PEFT, options=own, **common))
    return cases


def run(cases: list[Case], command: str, timeout: float | None = None, together: bool = False) -> dict:
    """Every case in a fresh worker process, or with `together` all of them in one (step and
    inference ratios from alternated rounds; memory per case on CUDA only)."""
    import torch

    first = cases[0]
    load_before = load_average()
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(first.amp, torch.float32)
    rates = [matrix_rate(torch.device(first.device), amp)]
    results = together_run(cases, timeout) if together else []
    for i, case in enumerate([] if together else cases, 1):
        name = f"{case.backbone} {case.method}" + (f" ({case.impl})" if case.impl != "vidpeft" else "")
        print(f"[{i}/{len(cases)}] {name} ({time.strftime('%H:%M:%S')}) ...", file=sys.stderr, flush=True)
        try:
            results.append(run_fresh(WORKER, ["--json", json.dumps(asdict(case))], timeout))
        except Exception as error:  # noqa: BLE001 - a failed case is recorded; the others still run
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"  failed: {message}", file=sys.stderr, flush=True)
            results.append({"case": asdict(case), "error": message})
    # the device's rate: the better of before and after (on a shared CPU, load only ever lowers it)
    rate = max(rates + [matrix_rate(torch.device(first.device), amp)])
    report.add_ratios(results, rate)
    return {
        "command": command, "input": {c.backbone: input_shape(c) for c in cases},
        "device": first.device, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "torch": torch.__version__, "warmup": first.warmup, "repeats": first.repeats,
        "grad_checkpointing": first.grad_checkpointing, "amp": first.amp, "one_process": together,
        "matrix_flops": rate, "matrix_dtype": str(amp).removeprefix("torch."),
        "memory": "CUDA max allocated" if first.device.startswith("cuda") else "process max RSS",
        "load_before": load_before, "load_after": load_average(),
        "results": results, "comparisons": report.comparisons(results),
    }


def together_run(cases: list[Case], timeout: float | None) -> list[dict]:
    """All cases in one worker process (worker.measure_together); if it fails, every case records why."""
    print(f"{len(cases)} cases in one process ({time.strftime('%H:%M:%S')}) ...", file=sys.stderr, flush=True)
    try:
        return run_fresh(WORKER, ["--json", json.dumps([asdict(c) for c in cases])], timeout)
    except Exception as error:  # noqa: BLE001 - recorded as every case's failure
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"  failed: {message}", file=sys.stderr, flush=True)
        return [{"case": asdict(c), "error": message} for c in cases]


def input_shape(case: Case) -> str:
    return f"batch {case.batch} x 3 x {case.frames} x {case.size} x {case.size}"
