"""vidpeft-bench: what each method costs (parameters, memory, speed, storage) against full fine-tuning."""
from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
from pathlib import Path

from ..backbones import BACKBONES
from ..bench.worker import PEFT_EQUIVALENTS
from .common import Parser, add_method_options, fail, method_help, method_options

# clip lengths are each backbone's default (BackboneInfo.frames): 16 for ViT-B (VideoMAE's setting),
# 8 for Swin-B (the V-PETL benchmark's) and for the micro models
QUICK = dict(backbones=["videomae-micro", "videoswin-micro"], size=64, repeats=2)
DEFAULT = dict(backbones=["videomae-b", "videoswin-b"], size=224, repeats=3)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="vidpeft-bench",
        description="Measure every method x backbone in a fresh process: trainable parameters, training "
        "step time (forward+backward+AdamW step, median after warm-up), peak memory (max RSS on CPU, CUDA "
        "peak on a GPU), inference time, adapter size, each relative to full fine-tuning, the step relative to "
        "LoRA's, the step's model FLOP utilisation (MFU) against a matrix product timed on the device; plus our VideoMAE "
        "LoRA vs transformers+peft and merged LoRA vs the plain backbone. Writes a Markdown table to "
        "stdout, DIR/bench.json and DIR/bench.png.")
    parser.add_argument("--backbone", nargs="+", help="default videomae-b videoswin-b (--quick: the micro ones); "
                        f"any of {', '.join(BACKBONES.names())}")
    parser.add_argument("--method", nargs="+", help=f"default: every registered method. {method_help()}")
    parser.add_argument("--frames", type=int, nargs="+",
                        help="clip length, one for all backbones or one per backbone (default: the backbone's, "
                        "16 for VideoMAE-B, 8 for Video Swin and the micro models)")
    parser.add_argument("--input-size", type=int, help="frame side (default 224; --quick 64)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, help="timed iterations after warm-up (default 3; --quick 2)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed training steps besides the first, which is never timed (default 0)")
    parser.add_argument("--grad-checkpointing", action="store_true", help="per-block activation checkpointing")
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="autocast dtype of forward and loss (default: fp32)")
    parser.add_argument("--no-peft", action="store_true", help="skip the comparisons with transformers+peft on VideoMAE "
                        f"({', '.join(PEFT_EQUIVALENTS)}: peft's equivalents)")
    parser.add_argument("--one-process", action="store_true",
                        help="measure every case in one process, a backbone at a time, steps alternated round by "
                        "round (ratios: medians of in-round ratios; saves a process start per case; memory is "
                        "per case on CUDA only)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--timeout", type=float, help="seconds allowed per case (default: none)")
    parser.add_argument("--quick", action="store_true", help="micro backbones, small input: a few minutes on CPU")
    parser.add_argument("--out", default="bench", help="output directory (default ./bench)")
    add_method_options(parser)  # applied to every method that has the option; LoRA's also to peft's
    args = parser.parse_args(argv)

    from ..backbones import backbone_info
    from ..bench import report, runner
    from ..fileio import write_atomic
    from ..methods import METHODS as REGISTERED

    preset = QUICK if args.quick else DEFAULT
    backbones = args.backbone or preset["backbones"]
    methods = args.method or REGISTERED.names()
    for name, registry in [(b, BACKBONES) for b in backbones] + [(m, REGISTERED) for m in methods]:
        try:
            registry.get(name)
        except KeyError as error:
            return fail(error)
    missing = missing_packages(["matplotlib"] + ([] if args.no_peft else ["transformers", "peft"]))
    if missing:  # before minutes of measuring, not after
        return fail(f"vidpeft-bench needs {', '.join(missing)}: pip install 'vidpeft[bench]'"
                    + ("" if args.no_peft or "matplotlib" in missing else " (or skip that comparison with --no-peft)"))
    if args.frames and len(args.frames) not in (1, len(backbones)):
        return fail(f"--frames takes one clip length or one per backbone ({len(backbones)}), got {args.frames}")
    if args.frames:
        frames = dict(zip(backbones, args.frames * len(backbones) if len(args.frames) == 1 else args.frames))
    else:
        frames = {b: backbone_info(b).frames for b in backbones}
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    options = {m: method_options(args, m) for m in methods}
    # every registered method by default: leave out the pairs a method says it cannot run on
    skip = set() if args.method else runner.unsupported(backbones, methods, options)
    cases = runner.cases_for(
        backbones, methods, not args.no_peft, frames, size=args.input_size or preset["size"],
        batch=args.batch_size, grad_checkpointing=args.grad_checkpointing, warmup=args.warmup,
        repeats=args.repeats or preset["repeats"], device=device, amp=args.amp, options=options, skip=skip)
    command = shlex.join(["vidpeft-bench", *(sys.argv[1:] if argv is None else argv)])
    result = runner.run(cases, command, args.timeout, together=args.one_process)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "bench.json", json.dumps(result, indent=2).encode())
    report.plot(result, out / "bench.png")
    print(report.markdown(result))
    print(f"\nwrote {out / 'bench.json'} and {out / 'bench.png'}")
    failed = [r for r in result["results"] if "error" in r]
    return 1 if failed else 0


def missing_packages(names: list[str]) -> list[str]:
    """The optional packages among `names` that are not installed."""
    return [name for name in names if importlib.util.find_spec(name) is None]


if __name__ == "__main__":
    sys.exit(main())
