"""vidpeft-train: fine-tune a backbone with a PEFT method on lists written by vidpeft-prep."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..backbones import BACKBONES
from ..data.decode import VideoReadError
from .common import add_method_options, fail, method_help, method_options

# flag -> dotted key in the resolved config
OVERRIDES = {
    "epochs": ("train.epochs", int, "number of epochs"),
    "batch_size": ("train.batch_size", int, "clips per process and step"),
    "lr": ("train.lr", float, "learning rate (default: the recipe's base_lr x batch / 256)"),
    "warmup_epochs": ("train.warmup_epochs", float, "linear warm-up epochs"),
    "weight_decay": ("train.weight_decay", float, "weight decay"),
    "optimizer": ("train.optimizer", str, "sgd or adamw"),
    "accumulation": ("train.accumulation", int, "gradient accumulation steps"),
    "amp": ("train.amp", str, "bf16, fp16 or none (default bf16 on CPU, fp16 on GPU)"),
    "eval_every": ("train.eval_every", int, "validate every N epochs, keeping the best; 0 = no validation, "
                   "test the last epoch"),
    "seed": ("train.seed", int, "random seed"),
    "drop_path": ("train.drop_path", float, "stochastic depth rate of the backbone"),
    "frames": ("data.frames", int, "frames per clip"),
    "stride": ("data.stride", int, "frame stride of dense sampling"),
    "sampling": ("data.sampling", str, "dense or segment"),
    "input_size": ("data.input_size", int, "crop size in pixels"),
    "decoder": ("data.decoder", str, "decord, pyav or torchcodec (optional extra)"),
    "num_workers": ("data.num_workers", int, "data loader worker processes"),
    "clips": ("test.clips", int, "temporal clips per test video"),
    "crops": ("test.crops", int, "spatial crops per test clip (1 = centre, 3 = left/centre/right)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidpeft-train",
        description="Train BACKBONE with METHOD on DATA_ROOT/train.csv, validate on val.csv (keeping the "
        "best epoch), then score test.csv with multi-view testing using the best checkpoint. "
        "Run under `torchrun --nproc_per_node N` for DistributedDataParallel.",
        epilog="Outputs in WORK_DIR: config.yaml (resolved), last.pt (resume state), best/ (adapter-only "
        "checkpoint), log.csv, eval.json.")
    parser.add_argument("--backbone", help=f"one of {', '.join(BACKBONES.names())}")
    parser.add_argument("--method", default="full", help=f"PEFT method (default full). {method_help()}")
    parser.add_argument("--data", dest="data_root", help="folder written by vidpeft-prep (lists + videos)")
    parser.add_argument("--work-dir", required=True, help="where checkpoints, logs and eval.json go")
    parser.add_argument("--pretrained", help="backbone checkpoint (official, Hugging Face, mmaction2, "
                        "torchvision) or a vidpeft work dir / best/ of a full fine-tuning run")
    parser.add_argument("--recipe", default="vpetl", help="vpetl (default), videomae, or a YAML path")
    parser.add_argument("--dataset", choices=["ssv2", "k400", "hmdb51"],
                        help="apply the recipe's per-dataset settings (default: read from prep_report.json)")
    for split in ("train", "val", "test"):
        parser.add_argument(f"--{split}-list", default=f"{split}.csv", help=f"{split} list inside DATA_ROOT")
    for flag, (_, kind, text) in OVERRIDES.items():
        parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None, help=text)
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute block activations in backward")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (frozen parts too); the first steps pay the compilation")
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable training video")
    parser.add_argument("--tensorboard", action="store_true", help="also log to WORK_DIR/tensorboard")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe value, e.g. --set train.momentum=0.8 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue WORK_DIR from last.pt with its config.yaml")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in WORK_DIR (by default such a WORK_DIR is refused)")
    add_method_options(parser)
    return parser


def resolved_config(args: argparse.Namespace) -> dict:
    from ..data import load_recipe
    from ..engine.config import read_yaml, resolve

    work_dir = Path(args.work_dir)
    if args.resume and (work_dir / "last.pt").is_file():
        cfg = read_yaml(work_dir / "config.yaml")
        cfg["resume"] = True
        return cfg
    if not args.backbone or not args.data_root:
        raise ValueError("--backbone and --data are required (unless --resume finds WORK_DIR/last.pt)")
    from ..engine.train import holds_a_run

    if holds_a_run(work_dir) and not args.overwrite:
        if args.resume:
            raise FileNotFoundError(f"{work_dir}: no last.pt to resume from (the run ended before its first "
                                    "epoch); start it again with --overwrite")
        raise FileExistsError(f"{work_dir}: already holds a vidpeft-train run; continue it with --resume, "
                              "replace it with --overwrite, or choose another --work-dir")
    data_root = Path(args.data_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"{data_root}: no such data folder; run vidpeft-prep first or fix --data")
    dataset = args.dataset or _prepared_dataset(data_root)
    overrides = {key: getattr(args, flag) for flag, (key, _, _) in OVERRIDES.items()}
    overrides["train.grad_checkpointing"] = True if args.grad_checkpointing else None
    overrides["train.strict"] = True if args.strict else None
    overrides["train.compile"] = True if args.compile else None
    cfg = resolve(load_recipe(args.recipe, dataset, backbone=args.backbone), overrides, args.set)
    drop_path = cfg.get("train", {}).get("drop_path")
    cfg["model"] = {
        "backbone": args.backbone, "method": args.method, "options": method_options(args),
        "pretrained": str(Path(args.pretrained).resolve()) if args.pretrained else None,
        "backbone_options": {"drop_path_rate": float(drop_path or 0.0)},
    }
    cfg.update(recipe=args.recipe, dataset=dataset, data_root=str(data_root.resolve()),
               work_dir=str(work_dir.resolve()), resume=bool(args.resume), overwrite=args.overwrite,
               tensorboard=args.tensorboard,
               lists={"train": args.train_list, "val": args.val_list, "test": args.test_list})
    return cfg


def _prepared_dataset(data_root: Path) -> str | None:
    report = data_root / "prep_report.json"
    if report.is_file():
        try:
            return json.loads(report.read_text(encoding="utf-8")).get("dataset")
        except (json.JSONDecodeError, AttributeError):
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = resolved_config(args)
        from ..engine.train import run

        result = run(cfg)
    except (KeyError, TypeError, ValueError, FileNotFoundError, FileExistsError, RuntimeError,
            VideoReadError) as error:
        return fail(error)
    if os.environ.get("RANK", "0") == "0":
        print(summary(result))
    return 0


def summary(result: dict) -> str:
    views = result["views"]
    sampling = f"stride {views['stride']}" if "stride" in views else f"{views.get('segments')} segments"
    return (f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  mean class acc "
            f"{result['mean_class_accuracy']:.2f}%  on {result['videos']} videos "
            f"({views['frames']} frames, {sampling}, {views['clips']} clips x {views['crops']} crops); "
            f"unreadable: {len(result['unreadable'])}; checkpoint {result['checkpoint']}")


if __name__ == "__main__":
    sys.exit(main())
