"""The one place that knows vidpeft-train's command line: a cell's argv, checked by its own parser,
and what to add so a rerun skips, resumes or restarts a cell."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from ..engine.rundir import RUN_OUTPUTS

TRAIN = "vidpeft-train"
TRAIN_MODULE = "vidpeft.cli.train"
# flags the sweep sets itself from the cell's coordinates (and from a cell's state on rerun)
OWNED = ("backbone", "method", "data", "work-dir", "seed", "resume", "overwrite")


def flag_args(flags: dict[str, Any], where: str) -> list[str]:
    """{"batch-size": 8, "amp": "none", "grad-checkpointing": true, "set": [...]} -> argv.

    True is a bare flag, False/None leave it out, a list repeats it (as --set takes)."""
    argv: list[str] = []
    for key, value in flags.items():
        flag = str(key).replace("_", "-")
        if flag in OWNED:
            raise ValueError(f"{where}.{key}: the sweep sets --{flag} itself "
                             "(use backbones:, methods:, datasets:, seeds:)")
        for item in value if isinstance(value, list) else [value]:
            if item is True:
                argv.append(f"--{flag}")
            elif item is not None and item is not False:
                argv += [f"--{flag}", str(item)]
    return argv


def option_args(options: dict[str, Any]) -> list[str]:
    """Method options as vidpeft-train flags: --<name with dashes>; tuples comma-separated."""
    argv: list[str] = []
    for name, value in options.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def train_argv(*, backbone: str, method: str, options: dict, data: str, work_dir: str, seed: int,
               flags: list[str], nproc_per_node: int | None = None) -> list[str]:
    """The cell's command line, as the emitted scripts contain it."""
    launcher = ([TRAIN] if not nproc_per_node else
                ["torchrun", "--standalone", "--nproc_per_node", str(nproc_per_node), "-m", TRAIN_MODULE])
    return [*launcher, "--backbone", backbone, "--method", method, "--data", data, "--work-dir", work_dir,
            "--seed", str(seed), *option_args(options), *flags]


def check_argv(argv: list[str], where: str) -> None:
    """Parse the cell's vidpeft-train arguments with vidpeft-train's own parser: a flag it does not know,
    or a value of the wrong type, is a one-line error naming the grid entry."""
    from ..cli.train import build_parser

    parser = build_parser()
    parser.exit_on_error = False
    parser.allow_abbrev = False  # a shortened flag in a grid file is a typo waiting to happen
    args = argv[argv.index(TRAIN_MODULE) + 1:] if TRAIN_MODULE in argv else argv[1:]
    try:
        _, unknown = parser.parse_known_args(args)
    except argparse.ArgumentError as error:
        raise ValueError(f"{where}: {error}") from None
    if unknown:
        raise ValueError(f"{where}: vidpeft-train has no option {unknown[0]} (see vidpeft-train --help)")


def state(work_dir: Path) -> str:
    """finished (eval.json), resumable (last.pt), started (outputs but no last.pt) or new."""
    if (work_dir / "eval.json").is_file():
        return "finished"
    if (work_dir / "last.pt").is_file():
        return "resumable"
    if any((work_dir / name).exists() for name in RUN_OUTPUTS):
        return "started"
    return "new"


# what a rerun adds to the cell's command line in each state (a started cell died before its first
# last.pt: --overwrite replaces only that run's own outputs, in the sweep's own work dir)
RERUN_FLAGS = {"new": [], "resumable": ["--resume"], "started": ["--overwrite"]}


def shell_run_cell() -> str:
    """The shell function the emitted scripts use: the same decisions as `state` / RERUN_FLAGS."""
    started = " || ".join(f'-e "$dir/{name}"' for name in RUN_OUTPUTS)
    return "\n".join([
        "run_cell() {  # WORK_DIR COMMAND...: skip a finished cell, resume an interrupted one",
        '  local dir=$1; shift',
        '  if [[ -f "$dir/eval.json" ]]; then echo "finished already: $dir"; return 0; fi',
        f'  if [[ -f "$dir/last.pt" ]]; then "$@" {" ".join(RERUN_FLAGS["resumable"])}',
        f'  elif [[ {started} ]]; then "$@" {" ".join(RERUN_FLAGS["started"])}',
        '  else "$@"; fi',
        "}",
    ])


def local_argv(argv: list[str]) -> list[str]:
    """The command to execute here: vidpeft-train / torchrun of this Python's environment, or
    `python -m` when the console script is not installed (a source checkout on PYTHONPATH)."""
    program, module = (TRAIN, TRAIN_MODULE) if argv[0] == TRAIN else ("torchrun", "torch.distributed.run")
    found = shutil.which(program, path=str(Path(sys.executable).parent))
    return [found, *argv[1:]] if found else [sys.executable, "-m", module, *argv[1:]]
