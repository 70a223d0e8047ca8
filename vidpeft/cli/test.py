"""vidpeft-test: multi-view top-1/top-5 of a trained run on a list, written to eval.json."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..data.decode import VideoReadError
from ..errors import UserError
from .common import fail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vidpeft-test",
        description="Score a vidpeft-train work dir's best checkpoint with K temporal clips x C spatial crops "
        "per video (per-view softmax averaged). Unreadable videos are excluded and listed, never replaced. "
        "Runs under torchrun too: each video is scored exactly once.")
    parser.add_argument("--work-dir", required=True, help="a vidpeft-train work dir (or its best/)")
    parser.add_argument("--data", help="data root (default: the one the run was trained on)")
    parser.add_argument("--list", help="list file to score (default: DATA/test.csv)")
    parser.add_argument("--clips", type=int, help="temporal clips per video (default: the recipe's)")
    parser.add_argument("--crops", type=int, help="spatial crops per clip: 1 centre, 3 left/centre/right")
    parser.add_argument("--temporal", choices=["videomae", "mmaction", "centred"],
                        help="where the K clips sit (default: the recipe's): videomae = VideoMAE / V-PETL code, "
                        "mmaction = mmaction2 SampleFrames test mode, centred = ours")
    parser.add_argument("--dump-views", metavar="FILE",
                        help="also write FILE (JSON): per video, the frame indices of every clip and the crop box "
                        "of every view, so the protocol can be checked")
    parser.add_argument("--frames", type=int, help="frames per clip (default: as trained)")
    parser.add_argument("--decoder", help="video decoder: decord, pyav or torchcodec (default: as trained)")
    parser.add_argument("--num-workers", type=int, help="data loader workers")
    parser.add_argument("--batch-views", type=int, default=8, help="views per forward pass (memory)")
    parser.add_argument("--pretrained", help="backbone checkpoint, if not at the path recorded in adapter.json")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long lists)")
    parser.add_argument("--out", help="where to write the result (default: WORK_DIR/eval_LIST_CLIPSxCROPS.json, "
                        "e.g. eval_test_4x3.json; the run's own eval.json is never overwritten)")
    args = parser.parse_args(argv)
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
    from ..engine.evaluate import evaluate, write_eval
    from ..engine.inference import checkpoint_dir, load_run, run_dir
    from ..engine.config import TrainConfig
    from ..engine.train import autocast

    device = dist.init()
    work_dir = Path(args.work_dir)
    model, cfg, data_cfg = load_run(work_dir, args.pretrained, {
        "test.clips": args.clips, "test.crops": args.crops, "test.temporal": args.temporal, "data.frames": args.frames,
        "data.decoder": args.decoder, "data.num_workers": args.num_workers}, compile=args.compile)
    data_root = Path(args.data or cfg["data_root"])
    list_file = Path(args.list) if args.list else data_root / cfg["lists"]["test"]
    dataset = VideoDataset(read_annotations(list_file, data_root), "test", data_cfg, seed=0)
    amp_context, _ = autocast(device, TrainConfig.from_recipe(cfg).amp)
    result = evaluate(model.to(device), dataset, device, amp_context, views_per_batch=args.batch_views,
                      num_workers=data_cfg.num_workers)
    run = run_dir(work_dir)
    result.update(checkpoint=str(checkpoint_dir(work_dir)), model_selection=_model_selection(run),
                  list=str(list_file))
    if dist.is_main():
        out = Path(args.out) if args.out else run / f"eval_{list_file.stem}_{data_cfg.test_clips}x{data_cfg.test_crops}.json"
        write_eval(out, result)
        if args.dump_views:
            dump_views(dataset, Path(args.dump_views))
        print(f"wrote {out}")
    dist.shutdown()
    return result


def dump_views(dataset, path: Path) -> None:
    """FILE for --dump-views: the views definition and every video's view plan."""
    from tqdm import tqdm

    from ..fileio import write_atomic

    videos = [dataset.view_plan(i) for i in tqdm(range(len(dataset)), desc="views", leave=False, dynamic_ncols=True, disable=None)]
    write_atomic(path, json.dumps({"views": dataset.cfg.views(), "videos": videos}, indent=1) + "\n")


def _model_selection(run: Path) -> str:
    """How the run chose the checkpoint in best/ (from its own eval.json)."""
    try:
        return json.loads((run / "eval.json").read_text(encoding="utf-8"))["model_selection"]
    except (OSError, ValueError, KeyError):
        return f"unknown ({run / 'eval.json'} is missing or has no model_selection)"


if __name__ == "__main__":
    sys.exit(main())
