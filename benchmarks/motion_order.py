"""Direction of motion on a backbone that ignores frame order: which adapters learn it, through vidpeft-train.

    python benchmarks/motion_order.py [--out motion_out --per-class 100 --epochs 10 --input-size 32
                                       --methods linear,adaptformer,st-adapter,mona,mona-3d]

1. Generates a raw Kinetics-layout dataset of two classes, an object moving right or left (the plain
   style: a flat object on a flat background, random size, start and speed, so only the direction
   tells them apart), and prepares it with vidpeft-prep.
2. Writes a "pretrained" Video Swin micro checkpoint that cannot see frame order: random weights
   (seed 0) with its relative position bias tables zeroed and the two temporal taps of its patch
   embedding averaged. Its tokens are then the same set for a clip and its time-reversed copy (the
   printed gap checks it), like an image model applied frame by frame; left and right differ only in
   frame order, so a linear probe on it is at chance by construction.
3. Trains every method with `vidpeft-train --pretrained` that checkpoint, the same settings for all
   (the vpetl recipe without its stochastic depth, which on a frozen random backbone is only noise),
   and prints the multi-view top-1 of each on the test list.
"""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import torch

from vidpeft.cli import prep as prep_cli
from vidpeft.cli import train as train_cli
from vidpeft.model import build_model
from vidpeft.synthetic import make_dataset

BACKBONE = "videoswin-micro"
MOTIONS = ("right", "left")
EXTRA_FLAGS = {"mona-3d": ["--method", "mona", "--mona-conv", "3d"]}  # method name -> its vidpeft-train flags


def order_blind_checkpoint(path: Path) -> float:
    """Save the frame-order-blind backbone; return its max |features(clip) - features(reversed clip)|."""
    torch.manual_seed(0)
    model = build_model(BACKBONE, "full", len(MOTIONS)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.zero_()
        taps = model.patch_embed.proj.weight
        taps.copy_(taps.mean(dim=2, keepdim=True).expand_as(taps))
        clip = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
        gap = (model.forward_features(clip) - model.forward_features(clip.flip(2))).abs().max().item()
    torch.save(model.state_dict(), path)
    return gap


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="motion_out", help="working folder (default ./motion_out)")
    parser.add_argument("--per-class", type=int, default=100, help="videos per direction (70%% train)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--input-size", type=int, default=32, help="crop size in pixels")
    parser.add_argument("--methods", default="linear,adaptformer,st-adapter,mona,mona-3d",
                        help="comma-separated; mona-3d = mona with --mona-conv 3d")
    parser.add_argument("--lr", type=float, default=1e-2, help="AdamW learning rate, every method")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    started = time.perf_counter()
    if not (out / "data" / "test.csv").is_file():
        make_dataset("k400", out / "raw", motions=MOTIONS, per_class=args.per_class, size=(128, 96),
                     frames=32, seed=4, plain=True)
        assert prep_cli.main(["k400", "--src", str(out / "raw"), "--out", str(out / "data"),
                              "--short-side", "96", "--no-progress"]) in (0, None)
    gap = order_blind_checkpoint(out / "order_blind.pth")
    print(f"order-blind backbone: max |features(clip) - features(reversed clip)| = {gap:.1e}", flush=True)
    results = {}
    for method in args.methods.split(","):
        argv = [*EXTRA_FLAGS.get(method, ["--method", method]), "--backbone", BACKBONE,
                "--data", str(out / "data"), "--work-dir", str(out / "runs" / method), "--overwrite",
                "--pretrained", str(out / "order_blind.pth"), "--epochs", str(args.epochs),
                "--batch-size", "8", "--optimizer", "adamw", "--lr", str(args.lr), "--weight-decay", "0.0",
                "--warmup-epochs", "1", "--drop-path", "0", "--frames", "8", "--stride", "4", "--input-size", str(args.input_size),
                "--num-workers", "2", "--clips", "2", "--crops", "1", "--eval-every", "0"]
        print(f"\n$ vidpeft-train {shlex.join(argv)}", flush=True)
        assert train_cli.main(argv) == 0, f"vidpeft-train failed for {method}"
        results[method] = json.loads((out / "runs" / method / "eval.json").read_text())
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{BACKBONE}, order-blind weights; {len(MOTIONS)} directions (chance {100 / len(MOTIONS):.0f}%), "
          f"{args.per_class} videos each, 8 frames of {args.input_size} px, {args.epochs} epochs, AdamW lr {args.lr}; "
          f"{minutes:.1f} min\n")
    print("| method | top-1 | test videos |\n|---|--:|--:|")
    for method, result in results.items():
        print(f"| {method} | {result['top1']:.1f} | {result['videos']} |")


if __name__ == "__main__":
    main()
