"""Direction of motion on a backbone that ignores frame order: which adapters learn it, through vidpeft-train.

    python benchmarks/motion_order.py [--out motion_out --per-class 100 --epochs 20 --input-size 32 --lrs 1e-3,3e-3
                                       --methods linear,adaptformer,st-adapter,mona,mona-3d]

1. Generates a raw Kinetics-layout dataset of two classes (`--motions`), an object moving right or left (the plain
   style: a flat object on a flat background, random size, start and speed, so only the direction
   tells them apart; 44x32 px, 32 frames), and prepares it with vidpeft-prep.
2. Writes a "pretrained" Video Swin micro checkpoint that cannot see frame order: random weights
   (seed 0) with its relative position bias tables zeroed and the two temporal taps of its patch
   embedding averaged. Its tokens are then the same set for a clip and its time-reversed copy (the
   printed gap checks it), like an image model applied frame by frame; left and right differ only in
   frame order, so a linear probe on it is at chance by construction.
3. Trains every method with `vidpeft-train --pretrained` that checkpoint, the same settings for all
   (the vpetl recipe without its stochastic depth, which on a frozen random backbone is only noise)
   at every learning rate of `--lrs`, keeps for each method the run with the best top-1 on the
   held-out validation list (vidpeft-prep's val.csv, never the test list), and prints its multi-view
   top-1 on the test list. One learning rate does not suit all: Mona's up-projection is not
   zero-initialised, and at 3e-3 it diverges where ST-Adapter needs it.
"""
from __future__ import annotations

import argparse
import csv
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
MOTIONS = ("right", "left")  # the default task: the same motion, in opposite directions
EXTRA_FLAGS = {"mona-3d": ["--method", "mona", "--mona-conv", "3d"]}  # method name -> its vidpeft-train flags


def order_blind_checkpoint(path: Path) -> float:
    """Save the frame-order-blind backbone; return its max |features(clip) - features(reversed clip)|."""
    torch.manual_seed(0)
    model = build_model(BACKBONE, "full", 2).eval()
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


def own_label_space(data: Path) -> None:
    """Relabel the prepared lists 0..K-1 with a K-line labels.txt: a 400-way Kinetics head with 398 absent
    classes swamps the adapters' gradient early in training (AdamW moves every absent row at full rate)."""
    names = (data / "labels.txt").read_text().splitlines()
    lists = {split: [line.rsplit(" ", 1) for line in (data / f"{split}.csv").read_text().splitlines()]
             for split in ("train", "val", "test")}
    used = sorted({int(label) for rows in lists.values() for _, label in rows})
    (data / "labels.txt").write_text("".join(names[i] + "\n" for i in used))
    for split, rows in lists.items():
        (data / f"{split}.csv").write_text("".join(f"{path} {used.index(int(label))}\n" for path, label in rows))


def train_one(method: str, lr: float, out: Path, args: argparse.Namespace) -> dict:
    """One vidpeft-train run; its eval.json plus the learning rate and the best validation top-1."""
    work_dir = out / "runs" / f"{method}_lr{lr:g}"
    argv = [*EXTRA_FLAGS.get(method, ["--method", method]), "--backbone", BACKBONE,
            "--data", str(out / "data"), "--work-dir", str(work_dir), "--overwrite",
            "--pretrained", str(out / "order_blind.pth"), "--epochs", str(args.epochs),
            "--batch-size", "8", "--optimizer", "adamw", "--lr", str(lr), "--weight-decay", "0.0",
            "--warmup-epochs", "1", "--drop-path", "0", "--frames", "8", "--stride", "4",
            "--input-size", str(args.input_size), "--num-workers", "2", "--clips", "2", "--crops", "1",
            "--eval-every", "1"]
    print(f"\n$ vidpeft-train {shlex.join(argv)}", flush=True)
    assert train_cli.main(argv) == 0, f"vidpeft-train failed for {method} at lr {lr}"
    result = json.loads((work_dir / "eval.json").read_text())
    with open(work_dir / "log.csv", newline="") as log:
        best_val = max(float(row["val_top1"]) for row in csv.DictReader(log))
    return {**result, "lr": lr, "val_top1": best_val}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="motion_out", help="working folder (default ./motion_out)")
    parser.add_argument("--per-class", type=int, default=100, help="videos per direction (70%% train)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--input-size", type=int, default=32, help="crop size in pixels")
    parser.add_argument("--methods", default="linear,adaptformer,st-adapter,mona,mona-3d",
                        help="comma-separated; mona-3d = mona with --mona-conv 3d")
    parser.add_argument("--lrs", default="1e-3,3e-3",
                        help="comma-separated AdamW learning rates tried for every method (best on val kept)")
    parser.add_argument("--motions", default=",".join(MOTIONS),
                        help="comma-separated classes of vidpeft.synthetic (e.g. right,up: an axis of motion, which "
                             "the order-blind backbone sees without frame order)")
    args = parser.parse_args(argv)
    motions = tuple(args.motions.split(","))
    out = Path(args.out).resolve()
    started = time.perf_counter()
    if not (out / "data" / "test.csv").is_file():
        make_dataset("k400", out / "raw", motions=motions, per_class=args.per_class, size=(44, 32),
                     frames=32, seed=4, plain=True)
        assert prep_cli.main(["k400", "--src", str(out / "raw"), "--out", str(out / "data"),
                              "--short-side", "0", "--no-progress"]) in (0, None)
        own_label_space(out / "data")
    gap = order_blind_checkpoint(out / "order_blind.pth")
    print(f"order-blind backbone: max |features(clip) - features(reversed clip)| = {gap:.1e}", flush=True)
    results = {}
    for method in args.methods.split(","):
        runs = [train_one(method, float(lr), out, args) for lr in args.lrs.split(",")]
        results[method] = max(runs, key=lambda run: run["val_top1"])
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{BACKBONE}, order-blind weights; motions {', '.join(motions)} (chance {100 / len(motions):.0f}%), "
          f"{args.per_class} videos each, 8 frames of {args.input_size} px, {args.epochs} epochs, AdamW lr in {args.lrs}; "
          f"{minutes:.1f} min\n")
    print("| method | lr (best val) | val top-1 | test top-1 | test videos |\n|---|--:|--:|--:|--:|")
    for method, run in results.items():
        print(f"| {method} | {run['lr']:g} | {run['val_top1']:.1f} | {run['top1']:.1f} | {run['videos']} |")


if __name__ == "__main__":
    main()
