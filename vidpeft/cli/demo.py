"""vidpeft-demo: the whole workflow on generated videos, no downloads.

1. generate a raw Kinetics-style dataset (6 motion classes) and prepare it with vidpeft-prep k400;
2. generate a raw Something-Something V2 dataset (webm, 4 motion classes, other videos, other
   label space) and prepare it with vidpeft-prep ssv2;
3. fully fine-tune a micro VideoMAE on the first: the stand-in for a pre-trained checkpoint;
4. train BAPAT on the second with the step-3 run as --pretrained backbone;
5. score the test list with vidpeft-test (clips x crops) and print top-1 against chance.
Every step is the console command a user would type; they are printed as they run.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from . import prep as prep_cli
from .common import Parser
from . import test as test_cli
from . import train as train_cli

# Translations and approach/recede: rotations are invisible in the plain style the demo uses.
SOURCE_MOTIONS = ("right", "left", "up", "down", "approach", "recede")
TARGET_MOTIONS = ("right", "left", "up", "down")
# small clips so the demo fits in a few minutes on 2 CPU cores
CLIP = ["--frames", "8", "--stride", "4", "--input-size", "64", "--num-workers", "2"]


def run(name: str, main, argv: list[str]) -> None:
    print(f"\n$ {name} {shlex.join(argv)}", flush=True)
    status = main(argv)
    if status not in (0, None):
        raise SystemExit(f"vidpeft-demo: step `{name}` failed with exit status {status}")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="vidpeft-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_out", help="working folder (default ./demo_out)")
    parser.add_argument("--backbone", default="videomae-micro",
                        help="videomae-micro (default) or videoswin-micro; the latter runs the same steps but, "
                        "trained from scratch on this little data, stays near chance within the demo's epochs "
                        "(as torchvision's Swin of the same size does): without absolute positions it must "
                        "learn motion from local windows")
    parser.add_argument("--source-per-class", type=int, default=40, help="videos per class, source task")
    parser.add_argument("--per-class", type=int, default=24, help="videos per class, target task")
    parser.add_argument("--source-epochs", type=int, default=15, help="epochs of the stand-in pre-training")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of BAPAT on the target task")
    args = parser.parse_args(argv)
    from ..synthetic import make_dataset

    out = Path(args.out).resolve()
    started = time.perf_counter()
    datasets = {"k400": ("source", 1, SOURCE_MOTIONS, args.source_per_class),
                "ssv2": ("target", 2, TARGET_MOTIONS, args.per_class)}
    for layout, (role, seed, motions, per_class) in datasets.items():
        raw = out / "raw" / role
        if not raw.exists():
            print(f"generating {len(motions)} x {per_class} raw {layout} videos in {raw}", flush=True)
            make_dataset(layout, raw, motions=motions, per_class=per_class, size=(128, 96), frames=32,
                         seed=seed, plain=True)
        run("vidpeft-prep", prep_cli.main, [layout, "--src", str(raw), "--out", str(out / role), "--short-side", "96"])

    runs = out / "runs"
    run("vidpeft-train", train_cli.main, [
        "--backbone", args.backbone, "--method", "full", "--data", str(out / "source"),
        "--work-dir", str(runs / "source-full"), "--overwrite", "--epochs", str(args.source_epochs), "--batch-size", "8",
        "--optimizer", "adamw", "--lr", "2e-3", "--weight-decay", "0.05", "--warmup-epochs", "1",
        "--clips", "1", "--crops", "1", *CLIP])
    run("vidpeft-train", train_cli.main, [
        "--backbone", args.backbone, "--method", "bapat", "--data", str(out / "target"),
        "--work-dir", str(runs / "target-bapat"), "--overwrite", "--pretrained", str(runs / "source-full"),
        "--epochs", str(args.epochs), "--batch-size", "8", "--optimizer", "adamw", "--lr", "3e-3",
        "--warmup-epochs", "1", "--clips", "2", "--crops", "3", *CLIP,
        # SSv2's test list is its validation list: choosing an epoch on it would tune on the test
        "--eval-every", "0"])
    run("vidpeft-test", test_cli.main, ["--work-dir", str(runs / "target-bapat"), "--clips", "2", "--crops", "3"])

    result = json.loads((runs / "target-bapat" / "eval.json").read_text(encoding="utf-8"))
    minutes = (time.perf_counter() - started) / 60
    print(f"\nvidpeft-demo: BAPAT on the generated SSv2 task: top-1 {result['top1']:.1f}% on {result['videos']} "
          f"test videos (chance {100 / len(TARGET_MOTIONS):.1f}%), {result['views']['clips']} clips x "
          f"{result['views']['crops']} crops; {minutes:.1f} min in all. Outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
