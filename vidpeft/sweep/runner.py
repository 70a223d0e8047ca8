"""Run a grid here, cell after cell: skip finished cells, resume interrupted ones, record failures and go on."""
from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..fileio import write_atomic
from ..report import markdown_table
from . import command
from .grid import Cell, Dataset, Grid

STATUS_FILE = "sweep.json"


class Interrupted(Exception):
    """SIGINT or SIGTERM while a cell ran: the cell keeps its last.pt, a rerun resumes it."""


@dataclass
class Outcome:
    status: str  # done | finished-already | failed | refused | interrupted
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # user + system time of the cell's processes: what the load does not change
    exit_code: int | None = None
    reason: str | None = None
    top1: float | None = None
    resumed: bool = False


def prepare_datasets(datasets: list[Dataset]) -> None:
    """Generate and prepare (vidpeft-prep) the datasets the grid asks for, unless already done."""
    for dataset in datasets:
        if dataset.generate and not (dataset.root / "prep_report.json").is_file():
            generate(dataset)


def generate(dataset: Dataset) -> None:
    from ..cli import prep as prep_cli
    from ..synthetic import make_dataset

    spec = dict(dataset.generate)
    layout = spec.pop("layout", "k400")
    raw = dataset.root.with_name(dataset.root.name + "-raw")
    if not raw.is_dir():
        print(f"generating raw {layout} videos for {dataset.name} in {raw}", flush=True)
        partial = raw.with_name(f".{raw.name}.partial")
        if "size" in spec:
            spec["size"] = tuple(spec["size"])
        make_dataset(layout, partial, **spec)
        os.replace(partial, raw)
    argv = [layout, "--src", str(raw), "--out", str(dataset.root), "--short-side", "0"]
    print(f"$ vidpeft-prep {shlex.join(argv)}", flush=True)
    if prep_cli.main(argv) != 0:
        raise RuntimeError(f"vidpeft-prep failed for dataset {dataset.name} ({raw})")


def run_grid(grid: Grid, follow: bool = False) -> list[tuple[Cell, Outcome]]:
    """Every cell in order; the outcomes are also written to ROOT/sweep.json after each cell."""
    grid.root.mkdir(parents=True, exist_ok=True)
    (grid.root / "logs").mkdir(exist_ok=True)
    results: list[tuple[Cell, Outcome]] = []
    started, load_before = time.time(), os.getloadavg()
    runnable = grid.runnable
    previous = {c["name"]: c.get("command") for c in _read_status(grid.root).get("cells", [])}
    with _interrupts():
        for cell in grid.cells:
            if cell.refused is not None:
                results.append((cell, Outcome("refused", reason=cell.refused)))
                continue
            position = f"[{runnable.index(cell) + 1}/{len(runnable)}]"
            try:
                outcome = run_cell(cell, grid.root / "logs" / f"{cell.name}.log", position,
                                   previous.get(cell.name), follow)
            except Interrupted:
                finished = command.state(cell.work_dir) == "finished"  # the signal came as the cell ended
                results.append((cell, Outcome("done", top1=_top1(cell.work_dir)) if finished else
                                Outcome("interrupted", reason="interrupted; rerun to resume")))
                write_status(grid, results, started, load_before)
                raise
            results.append((cell, outcome))
            write_status(grid, results, started, load_before)
    return results


def run_cell(cell: Cell, log: Path, position: str, previous_command: str | None, follow: bool = False) -> Outcome:
    now = command.state(cell.work_dir)
    if now == "finished":
        note = ""
        if previous_command not in (None, shlex.join(cell.argv)):
            note = "; its recorded command differs from the grid's now (delete the cell to rerun it)"
        print(f"{position} {cell.name}: finished already, not rerun{note}", flush=True)
        return Outcome("finished-already", top1=_top1(cell.work_dir), reason=note.lstrip("; ") or None)
    argv = cell.argv + command.RERUN_FLAGS[now]
    verb = {"new": "running", "resumable": "resuming from last.pt", "started": "restarting"}[now]
    print(f"{position} {cell.name}: {verb} (log {log})", flush=True)
    begin, cpu_begin = time.perf_counter(), _children_cpu()
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(command.local_argv(argv), stdout=subprocess.PIPE if follow else out,
                                   stderr=subprocess.STDOUT)
        try:
            if follow:  # the cell's output on the terminal too (progress bars included)
                for chunk in iter(lambda: process.stdout.read1(1 << 16), b""):
                    out.write(chunk)
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            code = process.wait()
        except Interrupted:
            _stop(process)
            print(f"{position} {cell.name}: interrupted (its last.pt is kept; rerun the sweep to resume)",
                  flush=True)
            raise
    seconds, cpu = round(time.perf_counter() - begin, 1), round(_children_cpu() - cpu_begin, 1)
    if code == 0 and command.state(cell.work_dir) == "finished":
        top1 = _top1(cell.work_dir)
        print(f"{position} {cell.name}: done in {seconds:.0f} s ({cpu:.0f} CPU s), top-1 {top1:.2f}%", flush=True)
        return Outcome("done", seconds, cpu, code, top1=top1, resumed=now == "resumable")
    reason = _error_line(log) or f"exit status {code}"
    print(f"{position} {cell.name}: FAILED (exit {code}): {reason}; log {log}", flush=True)
    return Outcome("failed", seconds, cpu, code, reason)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stop(process: subprocess.Popen) -> None:
    """A Ctrl-C in the terminal reached the cell too; a signal sent to the sweep alone is passed on."""
    for signum, grace in ((None, 0.2), (signal.SIGINT, 30), (signal.SIGKILL, None)):
        if signum is not None:
            process.send_signal(signum)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


class _interrupts:
    """Turn SIGINT / SIGTERM into Interrupted while cells run (a scheduler's SIGTERM stops the sweep
    the same way Ctrl-C does)."""

    def __enter__(self):
        def handler(signum, frame):
            raise Interrupted(signal.Signals(signum).name)

        self.saved = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc):
        for s, h in self.saved.items():
            signal.signal(s, h)
        return False


def _top1(work_dir: Path) -> float | None:
    try:
        return float(json.loads((work_dir / "eval.json").read_text(encoding="utf-8"))["top1"])
    except (OSError, ValueError, KeyError):
        return None


def _error_line(log: Path) -> str | None:
    """The one-line `error: ...` vidpeft-train printed, else the last line of its output."""
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [None])[-1]


def _read_status(root: Path) -> dict:
    try:
        return json.loads((root / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_status(grid: Grid, results: list[tuple[Cell, Outcome]], started: float, load_before) -> None:
    done = {cell.name: (cell, outcome) for cell, outcome in results}
    cells = []
    for cell in grid.cells:
        entry = {"name": cell.name, "dataset": cell.dataset, "backbone": cell.backbone, "method": cell.method,
                 "options": cell.options, "seed": cell.seed, "work_dir": str(cell.work_dir),
                 "command": shlex.join(cell.argv), "status": "pending"}
        if cell.name in done:
            entry.update({k: v for k, v in vars(done[cell.name][1]).items() if v is not None})
        cells.append(entry)
    status = {"grid": str(grid.path), "root": str(grid.root), "started": time.strftime(
        "%Y-%m-%d %H:%M:%S", time.localtime(started)), "seconds": round(time.time() - started, 1),
        "load_before": list(load_before), "load_after": list(os.getloadavg()), "cpus": os.cpu_count(),
        "cells": cells}
    write_atomic(grid.root / STATUS_FILE, json.dumps(status, indent=2) + "\n")


def summary(grid: Grid, results: list[tuple[Cell, Outcome]], seconds: float, load_before) -> str:
    count = {s: sum(o.status == s for _, o in results) for s in
             ("done", "finished-already", "failed", "refused", "interrupted")}
    resumed = sum(o.resumed for _, o in results)
    cpu = sum(o.cpu_seconds for _, o in results)
    load_after = os.getloadavg()
    lines = [f"vidpeft-sweep {grid.path}: {len(grid.cells)} cells: {count['done']} run ({resumed} resumed), "
             f"{count['finished-already']} finished already, {count['failed']} failed, {count['refused']} "
             f"refused, {count['interrupted']} interrupted; {seconds / 60:.1f} min ({cpu / 60:.1f} CPU min of the "
             f"cells); load average "
             f"{load_before[0]:.2f} before / {load_after[0]:.2f} after ({os.cpu_count()} CPUs)", "",
             *markdown_table(["cell", "status", "seconds", "CPU s", "top-1"], [], "llrrr")]
    for cell, o in results:
        top1 = f"{o.top1:.2f}" if o.top1 is not None else "–"
        status = o.status + (" (resumed)" if o.resumed else "")
        lines.append(f"| {cell.name} | {status} | {o.seconds:.0f} | {o.cpu_seconds:.0f} | {top1} |")
    for cell, o in results:
        if o.status in ("failed", "refused"):
            lines.append(f"{o.status}: {cell.name}: {o.reason}")
    lines += ["", f"table: vidpeft-table {grid.root}"]
    return "\n".join(lines)
