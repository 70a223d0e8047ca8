"""vidpeft-bench: what each method costs (parameters, memory, speed, storage) against full fine-tuning."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .common import fail

METHODS = ["full", "linear", "bitfit", "lora", "adaptformer", "prefix", "bapat"]
QUICK = dict(backbones=["videomae-micro", "videoswin-micro"], frames={"videomae": 8, "videoswin": 8}, size=64,
             repeats=2)
# 16 frames for ViT-B (VideoMAE's setting), 8 for Swin-B (the V-PETL benchmark's)
DEFAULT = dict(backbones=["videomae-b", "videoswin-b"], frames={"videomae": 16, "videoswin": 8}, size=224, repeats=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vidpeft-bench",
        description="Measure every method x backbone in a fresh process: trainable parameters, training "
        "step time (forward+backward+AdamW step, median after warm-up), peak memory (max RSS on CPU, CUDA "
        "peak on a GPU), inference time, adapter size, each relative to full fine-tuning; plus our VideoMAE "
        "LoRA vs transformers+peft and merged LoRA vs the plain backbone. Writes a Markdown table to "
        "stdout, DIR/bench.json and DIR/bench.png.")
    parser.add_argument("--backbone", nargs="+", help="default videomae-b videoswin-b (--quick: the micro ones)")
    parser.add_argument("--method", nargs="+", default=METHODS, help="default: all seven")
    parser.add_argument("--frames", type=int, nargs="+",
                        help="clip length, one for all backbones or one per backbone (default 16 for VideoMAE, "
                        "8 for Video Swin; --quick 8)")
    parser.add_argument("--input-size", type=int, help="frame side (default 224; --quick 64)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, help="timed iterations after warm-up (default 3; --quick 2)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed training steps besides the first, which is never timed (default 0)")
    parser.add_argument("--grad-checkpointing", action="store_true", help="per-block activation checkpointing")
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="autocast dtype of forward and loss (default: fp32)")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank, ours and peft's (default 16)")
    parser.add_argument("--alpha", type=float, default=16.0, help="LoRA alpha, ours and peft's (default 16)")
    parser.add_argument("--no-peft", action="store_true", help="skip the transformers+peft comparison")
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--timeout", type=float, help="seconds allowed per case (default: none)")
    parser.add_argument("--quick", action="store_true", help="micro backbones, small input: a few minutes on CPU")
    parser.add_argument("--out", default="bench", help="output directory (default ./bench)")
    args = parser.parse_args(argv)

    from ..backbones import BACKBONES
    from ..bench import report, runner
    from ..methods import METHODS as REGISTERED

    preset = QUICK if args.quick else DEFAULT
    backbones = args.backbone or preset["backbones"]
    for name, registry in [(b, BACKBONES) for b in backbones] + [(m, REGISTERED) for m in args.method]:
        try:
            registry.get(name)
        except KeyError as error:
            return fail(error)
    if args.frames and len(args.frames) not in (1, len(backbones)):
        return fail(f"--frames takes one clip length or one per backbone ({len(backbones)}), got {args.frames}")
    if args.frames:
        frames = dict(zip(backbones, args.frames * len(backbones) if len(args.frames) == 1 else args.frames))
    else:
        frames = {b: preset["frames"][b.split("-")[0]] for b in backbones}
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cases = runner.cases_for(
        backbones, args.method, not args.no_peft, frames, size=args.input_size or preset["size"],
        batch=args.batch_size, grad_checkpointing=args.grad_checkpointing, warmup=args.warmup, repeats=args.repeats or preset["repeats"], device=device, amp=args.amp,
        lora_options={"rank": args.rank, "alpha": args.alpha})
    command = shlex.join(["vidpeft-bench", *(sys.argv[1:] if argv is None else argv)])
    result = runner.run(cases, command, args.timeout)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_atomic(out / "bench.json", json.dumps(result, indent=2).encode())
    report.plot(result, out / "bench.png")
    print(report.markdown(result))
    print(f"\nwrote {out / 'bench.json'} and {out / 'bench.png'}")
    failed = [r for r in result["results"] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
