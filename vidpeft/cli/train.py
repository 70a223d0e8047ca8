"""vidpeft-train: fine-tune a backbone with a PEFT method on lists written by vidpeft-prep."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..backbones import BACKBONES
from ..config.flags import add_config_flags, config_flag_values
from ..config.run import RunConfig
from ..data.decode import VideoReadError
from ..errors import MissingFile, UserError
from .common import Parser, add_method_options, fail, method_help, method_options


def build_parser() -> Parser:
    parser = Parser(
        prog="vidpeft-train",
        description="Train BACKBONE with METHOD on DATA_ROOT/train.csv, validate on val.csv (keeping the "
        "best epoch), then score test.csv with multi-view testing using the best checkpoint. "
        "Run under `torchrun --nproc_per_node N` for DistributedDataParallel.",
        epilog="Outputs in WORK_DIR: config.yaml (resolved), last.pt (resume state), best/ (adapter-only "
        "checkpoint), log.csv, eval.json. Exit status: 0 done; 1 the loss became NaN/inf; 2 bad input; "
        "75 stopped by SIGTERM after saving last.pt (preemption: requeue with --resume auto); "
        "130 interrupted (Ctrl-C).")
    parser.add_argument("--backbone", help=f"one of {', '.join(BACKBONES.names())}")
    parser.add_argument("--method", default="full", help=f"PEFT method (default full). {method_help()}")
    parser.add_argument("--data", dest="data_root", help="folder written by vidpeft-prep (lists + videos); "
                        "default: the one dataset prepared under ./data")
    parser.add_argument("--work-dir", help="where checkpoints, logs and eval.json go "
                        "(default: runs/BACKBONE-METHOD-DATASET)")
    parser.add_argument("--pretrained", help="backbone checkpoint (official, Hugging Face, mmaction2, "
                        "torchvision) or a vidpeft work dir / best/ of a full fine-tuning run")
    parser.add_argument("--recipe", default="vpetl", help="vpetl (default), videomae, or a YAML path")
    parser.add_argument("--dataset", choices=["ssv2", "k400", "hmdb51"],
                        help="apply the recipe's per-dataset settings (default: read from prep_report.json)")
    for split in ("train", "val", "test"):
        parser.add_argument(f"--{split}-list", default=f"{split}.csv", help=f"{split} list inside DATA_ROOT")
    parser.add_argument("--select-on-test", action="store_true",
                        help="allow choosing the best epoch on a validation list that shares videos with the test "
                        "list (refused by default; for reproducing protocols that did so); eval.json says it")
    parser.add_argument("--tensorboard", action="store_true", help="also log to WORK_DIR/tensorboard")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe value, e.g. --set train.momentum=0.8 (repeatable)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="auto",
                        help="continue WORK_DIR from last.pt with its config.yaml; `--resume auto` continues "
                        "when last.pt exists and otherwise starts the run the other flags describe (for "
                        "requeue scripts)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in WORK_DIR (by default such a WORK_DIR is refused)")
    add_config_flags(parser)
    add_method_options(parser)
    return parser


def resolved_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of this command: the run to resume, or a new one from recipe + flags + --set."""
    from ..config.run import ModelConfig, build_run_config
    from ..engine.rundir import holds_a_run

    if not args.backbone and not (args.resume and args.work_dir):
        raise UserError("--resume alone needs --work-dir (or give the --backbone and --method of the run)"
                        if args.resume else "--backbone is required, e.g. --backbone videomae-b")
    data_root = dataset = None
    if args.work_dir:
        work_dir = Path(args.work_dir)
    else:  # mmaction2's work_dirs/<config> habit
        data_root, dataset = _data(args)
        work_dir = Path("runs") / f"{args.backbone}-{args.method}-{dataset or data_root.name}"
        print(f"work dir: {work_dir}")
    if args.resume:
        resumed = _resumed(work_dir, plain=args.resume is True or not args.backbone)
        if resumed is not None:
            return resumed
    if data_root is None:
        data_root, dataset = _data(args)
    if holds_a_run(work_dir) and not args.overwrite:
        raise UserError(f"{work_dir}: already holds a vidpeft-train run; continue it with --resume, "
                        "replace it with --overwrite, or choose another --work-dir")
    model = ModelConfig(args.backbone, args.method, method_options(args), _pretrained(args.pretrained))
    return build_run_config(
        args.recipe, dataset, model, config_flag_values(args), args.set, data_root=str(data_root.resolve()),
        work_dir=str(work_dir.resolve()), overwrite=args.overwrite, tensorboard=args.tensorboard,
        select_on_test=args.select_on_test, lists={"train": args.train_list, "val": args.val_list,
                                                   "test": args.test_list})


def _resumed(work_dir: Path, plain: bool) -> RunConfig | None:
    """The run in `work_dir` to continue (resume=True), or a start that never finished an epoch to redo;
    None where `--resume auto` finds nothing to resume (a new run starts)."""
    from ..engine.rundir import holds_a_run

    config = work_dir / "config.yaml"
    if (work_dir / "last.pt").is_file():
        return replace(RunConfig.read(config), resume=True)
    if not plain:
        return None
    if config.is_file() and not holds_a_run(work_dir):
        print(f"{work_dir} never finished an epoch: starting it again from its config.yaml")
        return replace(RunConfig.read(config), resume=False)
    raise UserError(f"{work_dir}: nothing to resume (no last.pt); start the run without --resume "
                    "(or with --resume auto, which starts it when there is nothing to resume)")


def _pretrained(given: str | None) -> str | None:
    """A checkpoint path made absolute (the run may be resumed from elsewhere); other forms (hub names) as given."""
    return str(Path(given).resolve()) if given and Path(given).exists() else given


def _data(args: argparse.Namespace) -> tuple[Path, str | None]:
    data_root = Path(args.data_root) if args.data_root else default_data()
    if not data_root.is_dir():
        raise MissingFile(f"{data_root}: no such data folder; run vidpeft-prep first or fix --data")
    return data_root, args.dataset or _prepared_dataset(data_root)


def default_data(parent: Path = Path("data")) -> Path:
    """The one dataset vidpeft-prep wrote under ./data (its default --out)."""
    found = sorted(p.parent for p in parent.glob("*/prep_report.json")) if parent.is_dir() else []
    if len(found) == 1:
        print(f"--data {found[0]} (the prepared dataset under {parent}/)")
        return found[0]
    if not found:
        raise UserError(f"no --data given and no dataset prepared under {parent}/; run vidpeft-prep "
                        "(e.g. vidpeft-prep ssv2 --src raw/) or pass --data")
    raise UserError(f"no --data given and {len(found)} datasets under {parent}/ "
                    f"({', '.join(str(p) for p in found)}); choose one with --data")


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
    if args.resume not in (False, True, "auto"):
        return fail(f"--resume takes no value or 'auto', got {args.resume!r}")
    from ..engine.train import run
    from ..engine.trainer import EXIT_PREEMPTED, Preempted, TrainingDiverged

    cfg = None
    try:
        cfg = resolved_config(args)
        result = run(cfg)
    except (UserError, VideoReadError) as error:
        return fail(error)
    except TrainingDiverged as error:
        return fail(error, status=1)
    except Preempted as error:
        saved = Path(cfg.work_dir, "last.pt").is_file()
        print(f"vidpeft-train: {error}; " + (f"continue with: vidpeft-train --work-dir {cfg.work_dir} --resume"
                                             if saved else "nothing to resume yet: run the same command again"),
              file=sys.stderr)
        return EXIT_PREEMPTED
    except KeyboardInterrupt:
        where = cfg.work_dir if cfg else None
        hint = (f"continue with: vidpeft-train --work-dir {where} --resume" if where and
                Path(where, "config.yaml").is_file() else "nothing was written; run the same command again")
        print(f"vidpeft-train: interrupted; {hint}", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":
        print(summary(result))
    return 0


def summary(result: dict) -> str:
    views = result["views"]
    sampling = f"stride {views['stride']}" if "stride" in views else f"{views.get('segments')} segments"
    return (f"top-1 {result['top1']:.2f}%  top-5 {result['top5']:.2f}%  mean class acc "
            f"{result['mean_class_accuracy']:.2f}%  on {result['videos']} videos "
            f"({views['frames']} frames, {sampling}, {views['clips']} clips x {views['crops']} crops, "
            f"{views.get('temporal', 'centred')} placement); "
            f"unreadable: {len(result['unreadable'])}; checkpoint {result['checkpoint']}")


if __name__ == "__main__":
    sys.exit(main())
