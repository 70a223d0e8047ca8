"""vidpeft-test: multi-view top-1/top-5 of a trained run on a list, written to eval.json."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..data.decode import VideoReadError
from ..config.flags import add_config_flags, view_options
from ..errors import UserError
from .common import Parser, fail


def build_parser() -> Parser:
    parser = Parser(
        prog="vidpeft-test",
        description="Score a vidpeft-train work dir's best checkpoint with K temporal clips x C spatial crops "
        "per video (per-view softmax averaged). Unreadable videos are excluded and listed, never replaced. "
        "Runs under torchrun too: each video is scored exactly once.")
    parser.add_argument("--work-dir", required=True, help="a vidpeft-train work dir (or its best/)")
    parser.add_argument("--data", help="data root (default: the one the run was trained on)")
    parser.add_argument("--list", help="list file to score (default: DATA/test.csv)")
    parser.add_argument("--dump-views", metavar="FILE",
                        help="also write FILE (JSON): per video, the frame indices of every clip and the crop box "
                        "of every view, so the protocol can be checked")
    parser.add_argument("--batch-views", type=int, default=8, help="views per forward pass (memory)")
    parser.add_argument("--pretrained", help="backbone checkpoint, if not at the path recorded in adapter.json")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long lists)")
    parser.add_argument("--out", help="where to write the result (default: WORK_DIR/eval_LIST_CLIPSxCROPS.json, "
                        "e.g. eval_test_4x3.json; the run's own eval.json is never overwritten)")
    add_config_flags(parser, views_only=True, also=("num_workers",))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = score(args)
    except (UserError, VideoReadError) as error:
        return fail(error)
    if os.environ.get("RANK", "0") == "0":
        from .train import summary

        print(json.dumps(result, indent=2))
        print(summary(result))
    return 0


def score(args: argparse.Namespace) -> dict:
    from ..data import VideoDataset, read_annotations
    from ..engine import distributed as dist
    from ..engine.evaluate import multi_view_test
    from ..engine.inference import checkpoint_dir, load_run, model_selection, run_folder
    from ..engine.precision import autocast

    if args.batch_views < 1:
        raise UserError(f"--batch-views {args.batch_views}: must be at least 1")
    device = dist.init()
    work_dir = Path(args.work_dir)
    model, cfg = load_run(work_dir, args.pretrained, view_options(args), compile=args.compile)
    data_root = Path(args.data) if args.data else cfg.root
    list_file = Path(args.list) if args.list else data_root / cfg.lists["test"]
    samples = read_annotations(list_file, data_root)
    out = Path(args.out) if args.out else run_folder(work_dir) / f"eval_{list_file.stem}_{cfg.data.test_clips}x{cfg.data.test_crops}.json"
    amp_context, _ = autocast(device, cfg.train.amp)
    result = multi_view_test(model.to(device), samples, cfg.data, device, amp_context, args.batch_views,
                             checkpoint=checkpoint_dir(work_dir), selection=model_selection(work_dir),
                             list_file=list_file, out=out)
    if dist.is_main():
        if args.dump_views:
            dump_views(VideoDataset(samples, "test", cfg.data, seed=0), Path(args.dump_views))
        print(f"wrote {out}")
    dist.shutdown()
    return result


def dump_views(dataset, path: Path) -> None:
    """FILE for --dump-views: the views definition and every video's view plan."""
    from tqdm import tqdm

    from ..fileio import write_atomic

    videos = [dataset.view_plan(i) for i in tqdm(range(len(dataset)), desc="views", leave=False, dynamic_ncols=True, disable=None)]
    write_atomic(path, json.dumps({"views": dataset.cfg.views(), "videos": videos}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
