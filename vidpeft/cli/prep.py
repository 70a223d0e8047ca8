"""vidpeft-prep: turn a raw SSv2 / Kinetics-400 / HMDB51 download into mp4 clips + lists."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..prep import hmdb51, k400, ssv2
from ..prep.archives import ArchiveReadError
from ..prep.plan import DEFAULT_VAL_FRACTION, LayoutError, hold_out_validation
from ..prep.runner import REPORT, run
from ..prep.transcode import ENCODINGS, EncodeSettings
from .common import Parser

DATASETS = {"ssv2": ssv2, "k400": k400, "hmdb51": hmdb51}
EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow")
SHOWN = 10  # failures / missing entries printed in the summary; the report has them all

EPILOG = f"""\
raw layouts (--src):
  ssv2    <id>.webm files + labels.json, train.json, validation.json
          (or something-something-v2-labels.json, -train.json, -validation.json)
  k400    train.csv, validate.csv or val.csv, [test.csv] + <youtube_id>_<start>_<end>.mp4
          files, in class folders (train/air drumming/...) or flat
  hmdb51  class folders of .avi files, or the 51 <class>.rar files, + the split files
          <class>_test_split<k>.txt (extracted, or inside test_train_splits.rar)

outputs (--out):
  videos/...mp4    H.264 yuv420p, even size, no audio, same frame rate and frame count,
                   encoded for cheap clip decoding (--encoding);
                   short side 320 for k400/hmdb51, original size (240 px high) for ssv2
  train.csv val.csv test.csv   '<path relative to OUT> <label id>' per converted video;
                   test.csv is the official evaluation list (ssv2: its validation set;
                   hmdb51: test_split<k>; k400: test, or validate without a labelled test);
                   where that list has no separate validation set, val.csv is a held-out
                   class-stratified slice of the training list (--val-fraction, --val-seed),
                   train.csv the rest, train_all.csv the whole training list
                   (hmdb51: also train_split<k>.csv / test_split<k>.csv)
  labels.txt       class name per line, line number = label id
  {REPORT}  converted, skipped, failed [{{path, reason}}], missing [...]

A rerun with the same --out skips finished videos (run one vidpeft-prep per --out at a
time). Source files are never modified, moved or deleted.

exit status:
  {EXIT_OK}    every annotated video is converted (or was already)
  {EXIT_INCOMPLETE}    finished, but some videos failed or are missing (named in {REPORT};
       the lists leave them out)
  {EXIT_USAGE}    bad arguments, or --src does not look like the dataset (nothing converted)
  {EXIT_INTERRUPTED}  interrupted; rerun the same command to resume
"""


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="vidpeft-prep", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=DATASETS, help="which dataset --src holds")
    p.add_argument("--src", type=Path, required=True, metavar="RAW", help="the raw download (read only)")
    p.add_argument("--out", type=Path, help="where to write videos and lists (default: data/DATASET, "
                   "where vidpeft-train looks when --data is not given)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="parallel conversions (default: all cores)")
    p.add_argument("--short-side", type=int, default=None, metavar="S",
                   help="scale so the short side is S px; 0 = keep the source size "
                        "(default: 320 for k400/hmdb51, 0 for ssv2)")
    p.add_argument("--split", type=int, choices=(1, 2, 3), default=1,
                   help="hmdb51: the split written as train/val/test.csv (default 1)")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, metavar="F",
                   help="share of each class of the training list held out as val.csv where the dataset "
                        f"has no validation set apart from its test list (default {DEFAULT_VAL_FRACTION}; "
                        "0 = val.csv repeats test.csv)")
    p.add_argument("--val-seed", type=int, default=0, metavar="S", help="seed of the held-out draw (default 0)")
    p.add_argument("--crf", type=int, default=23, metavar="C", help="x264 quality, lower = better (23)")
    p.add_argument("--preset", default="veryfast", choices=PRESETS, metavar="PRESET",
                   help="x264 preset, ultrafast ... veryslow (default veryfast)")
    p.add_argument("--encoding", default="fastseek", choices=ENCODINGS,
                   help="fastseek (default): keyframe every 64 frames, fixed non-reference B-frames, "
                        "tune=fastdecode: about 2x cheaper to read per training clip at up to 1.7x "
                        "the size (README, Preparing datasets); x264: x264's defaults (the smaller "
                        "files vidpeft-prep wrote before)")
    p.add_argument("--threads", type=int, default=0, metavar="T",
                   help="decoder/encoder threads per video (default 0 = automatic, as ffmpeg)")
    p.add_argument("--labels", default="community", metavar="{community,dataset,FILE}",
                   help="label map: community (default: annotations/, the ids published results use), "
                        "dataset (the download's own classes: Kinetics-600/700, subsets, SSv2 labels.json "
                        "ids) or a file with one class name per line; the report says how it differs "
                        "from the community map")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _summary(report: dict, out: Path) -> str:
    failed, missing = report["failed"], report["missing"]
    head = (f"vidpeft-prep {report['dataset']}: {report['converted']} converted, "
            f"{report['skipped']} skipped (already done), {len(failed)} failed, "
            f"{len(missing)} missing in {report['seconds']:.1f} s")
    lines = [head]
    lines += [f"  failed: {f['path']}: {f['reason']}" for f in failed[:SHOWN]]
    lines += [f"  missing: {m}" for m in missing[:SHOWN]]
    if len(failed) > SHOWN or len(missing) > SHOWN:
        lines.append(f"  ... the full lists are in {out / REPORT}")
    lists = ", ".join(f"{name} ({n})" for name, n in report["lists"].items())
    labels = report["labels"]
    lines.append(f"labels: {labels['map']} map, {labels['classes']} classes" + (
        "" if labels["same_as_community"] else
        f"; against the community map: {len(labels['not_in_community'])} not in it, "
        f"{labels['community_classes_absent']} of it absent, {labels['renumbered']} with another id"))
    lines.append(f"lists in {out}: {lists}, labels.txt; report: {out / REPORT}")
    if "val_list" in report:
        lines.append(f"val.csv: {report['val_list']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    module = DATASETS[args.dataset]
    args.out = args.out or Path("data") / args.dataset
    if not args.src.is_dir():
        print(f"error: --src {args.src}: no such folder", file=sys.stderr)
        return EXIT_USAGE
    if args.src.resolve() == args.out.resolve():
        print("error: --out must differ from --src (sources are never overwritten)",
              file=sys.stderr)
        return EXIT_USAGE
    short_side = module.DEFAULT_SHORT_SIDE if args.short_side is None else args.short_side
    if min(short_side, args.workers, args.threads) < 0 or not 0 <= args.crf <= 51 or not 0 <= args.val_fraction < 1:
        print("error: --short-side, --workers and --threads must be >= 0, --crf 0..51, "
              "--val-fraction in [0, 1)", file=sys.stderr)
        return EXIT_USAGE
    options = {"split": args.split} if module is hmdb51 else {}
    options["labels"] = args.labels
    settings = EncodeSettings(short_side=short_side, crf=args.crf, preset=args.preset,
                              threads=args.threads, encoding=args.encoding)
    try:
        plan = module.plan(args.src, args.out, **options)
        hold_out_validation(plan, args.val_fraction, args.val_seed)
        report = run(plan, args.out, settings, workers=args.workers,
                     progress=not args.no_progress)
    except (LayoutError, ArchiveReadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("vidpeft-prep: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(_summary(report, args.out))
    return EXIT_INCOMPLETE if report["failed"] or report["missing"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
