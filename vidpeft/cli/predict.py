"""vidpeft-predict: top-k labels with confidences for video files, from a trained run."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config.flags import add_config_flags, view_options
from ..errors import UserError
from .common import Parser, fail


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="vidpeft-predict",
        description="Print the top-k labels and scores (multi-view averaged softmax) for each VIDEO.")
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    parser.add_argument("--work-dir", required=True, help="a vidpeft-train work dir (or its best/)")
    parser.add_argument("--topk", type=int, default=5, help="how many labels per video (default 5)")
    parser.add_argument("--pretrained", help="backbone checkpoint, if not at the path recorded in adapter.json")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long lists)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    add_config_flags(parser, views_only=True)
    args = parser.parse_args(argv)
    if args.topk < 1:
        return fail(f"--topk {args.topk}: must be at least 1")
    absent = [v for v in args.videos if not Path(v).is_file()]
    if absent:
        return fail(f"{absent[0]}: no such video file" + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""))
    try:
        predictions = predict(args)
    except UserError as error:
        return fail(error)
    failed = [p for p in predictions if "error" in p]
    if args.json:
        print(json.dumps(predictions, indent=2))
    else:
        for p in predictions:
            if "error" in p:
                print(f"error: {p['error']}", file=sys.stderr)
                continue
            print(p["video"])
            for guess in p["predictions"]:
                print(f"  {guess['score']:.4f}  {guess['label']}")
    return 1 if failed else 0


def predict(args: argparse.Namespace) -> list[dict]:
    import torch

    from ..data import Sample, VideoDataset
    from ..data.decode import VideoReadError
    from ..engine.evaluate import video_probabilities
    from ..engine.inference import load_run
    from ..engine.precision import autocast

    model, cfg = load_run(args.work_dir, args.pretrained, view_options(args), compile=args.compile)
    names = model.vidpeft_spec.labels or [str(i) for i in range(model.vidpeft_spec.num_classes)]
    dataset = VideoDataset([Sample(Path(v), 0) for v in args.videos], "test", cfg.data, seed=0, strict=True)
    device = torch.device("cpu")
    amp_context, _ = autocast(device, cfg.train.amp)
    out = []
    for i, video in enumerate(args.videos):
        try:
            views, _, _ = dataset[i]
        except VideoReadError as error:
            out.append({"video": video, "error": f"cannot read video {error.path}: {error.reason}"})
            continue
        probs = video_probabilities(model, views, device, amp_context, views_per_batch=8)
        scores, ids = probs.topk(min(args.topk, len(names)))
        out.append({"video": video, "predictions": [
            {"label": names[j], "label_id": int(j), "score": round(float(s), 6)} for s, j in zip(scores, ids)]})
    return out


if __name__ == "__main__":
    sys.exit(main())
