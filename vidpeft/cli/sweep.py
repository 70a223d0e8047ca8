"""vidpeft-sweep: run a grid of vidpeft-train cells here, or write them as a shell or SLURM array script."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from .common import Parser, fail

SCRIPT_NAMES = {"shell": "sweep.sh", "slurm": "sweep.sbatch"}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vidpeft-sweep",
        description="Every cell of GRID (backbones x methods x datasets x seeds; see configs/sweeps/demo.yaml) "
        "is one ordinary vidpeft-train run in its own work dir ROOT/<dataset>__<backbone>__<method>__seed<N>. "
        "Run here, cell after cell: a finished cell is skipped, an interrupted one resumes from its last.pt, a "
        "failed one is recorded and the sweep goes on; ROOT/sweep.json holds every cell's status. Then "
        "`vidpeft-table ROOT` makes the table.",
        epilog="Exit status: 0 every cell finished (or was refused by its method); 1 some cells failed; "
        "2 bad grid; 130 interrupted (rerun the same command to resume).")
    parser.add_argument("grid", help="a grid YAML file, or the name of a shipped one (demo)")
    parser.add_argument("--dry-run", action="store_true", help="list the cells, their state and commands; run nothing")
    parser.add_argument("--emit", choices=sorted(SCRIPT_NAMES),
                        help="write the cells as a shell script or a SLURM job-array script (one cell per array "
                        "index) instead of running them")
    parser.add_argument("--script", help="where --emit writes (default ROOT/sweep.sh or ROOT/sweep.sbatch)")
    parser.add_argument("--follow", action="store_true",
                        help="show each cell's output here too (it always goes to ROOT/logs/<cell>.log)")
    parser.add_argument("--root", help="the sweep's folder (default: the grid's root:, else sweeps/<grid name>)")
    parser.add_argument("--nproc-per-node", type=int,
                        help="run each cell under torchrun with N processes (default: the grid's launcher:)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..fileio import write_atomic
    from ..sweep import EMITTERS, load_grid, prepare_datasets, run_grid, summary
    from ..sweep.command import state

    try:
        grid = load_grid(args.grid, args.root, args.nproc_per_node)
    except (KeyError, TypeError, ValueError, FileNotFoundError) as error:
        return fail(error)
    for dataset in grid.datasets:
        if not dataset.generate and not dataset.root.is_dir():
            print(f"warning: dataset {dataset.name}: {dataset.root} does not exist here", file=sys.stderr)
    if args.dry_run:
        for cell in grid.cells:
            now = "refused: " + cell.refused if cell.refused else state(cell.work_dir)
            print(f"{cell.name}  [{now}]\n  {shlex.join(cell.argv)}")
        print(f"{len(grid.runnable)} cells to run, {len(grid.cells) - len(grid.runnable)} refused; root {grid.root}")
        return 0
    try:
        prepare_datasets(grid.datasets)
    except (ValueError, RuntimeError) as error:
        return fail(error)
    if args.emit:
        (grid.root / "logs").mkdir(parents=True, exist_ok=True)
        path = args.script or str(grid.root / SCRIPT_NAMES[args.emit])
        try:
            text = EMITTERS[args.emit](grid)
        except ValueError as error:
            return fail(error)
        write_atomic(Path(path), text)
        os.chmod(path, 0o755)
        run = f"sbatch {path}" if args.emit == "slurm" else f"bash {path}"
        print(f"wrote {path}: {len(grid.runnable)} cells; run it with `{run}`, then `vidpeft-table {grid.root}`")
        return 0
    from ..sweep.runner import Interrupted

    started, load_before = time.perf_counter(), os.getloadavg()
    try:
        results = run_grid(grid, follow=args.follow)
    except Interrupted:
        print("vidpeft-sweep: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print("\n" + summary(grid, results, time.perf_counter() - started, load_before))
    return 1 if any(o.status == "failed" for _, o in results) else 0


if __name__ == "__main__":
    sys.exit(main())
