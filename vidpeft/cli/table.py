"""vidpeft-table: the benchmark's table from your own runs (vidpeft-train work dirs or vidpeft-sweep roots)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import Parser, fail


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vidpeft-table",
        description="Read every finished run (eval.json, config.yaml, best/adapter.json) in or under the given "
        "folders and print a Markdown table: backbone, method, trainable parameters (head excluded, as the "
        "benchmark counts), top-1 and top-5 per dataset (mean ± std over seeds) and V-PETL's PPT = top-1 x "
        "exp(-log10(P / 10^7 + 1)). Runs that differ in clip, views or model selection are separate rows.",
        epilog="Writes table.csv, table.json and table.png (top-1 against trainable parameters, one panel per "
        "dataset, the Pareto front dashed) into --out.")
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_SWEEP", help="work dirs or sweep roots")
    parser.add_argument("--out", help="where the files go (default: the folder given, when only one is)")
    from ..table import REFERENCES

    parser.add_argument("--reference", choices=sorted(REFERENCES),
                        help="put the published V-PETL Bench video rows next to ours, with the difference")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..table import build_table, find_run_dirs, markdown, read_runs, write_all

    try:
        run_dirs, unfinished = find_run_dirs(args.paths)
        runs = read_runs(run_dirs)
        if not runs:
            raise ValueError("no run could be read (see the warnings above)")
        table = build_table(runs, args.reference)
    except (KeyError, ValueError, FileNotFoundError) as error:
        return fail(error)
    print(markdown(table, unfinished))
    out = args.out or (args.paths[0] if len(args.paths) == 1 else None)
    if out is None:
        print("\n(several folders given: pass --out DIR to write table.csv, table.json and table.png)")
        return 0
    paths = write_all(table, Path(out), unfinished)
    print("\nwrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
