"""Run a Plan: convert its jobs over a bounded process pool, resumable, with a report.

Finished outputs are skipped on a rerun (a final name only ever holds a complete, probed
video). Failures are recorded and the run goes on. The annotation lists, labels.txt and
prep_report.json are written atomically at the end.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from .. import fileio
from .archives import ArchiveReadError, iter_members
from .plan import Job, LayoutError, Plan
from .transcode import PART_MARK, EncodeSettings, TranscodeError, transcode

REPORT = "prep_report.json"
CRASH = "a worker process died while converting this video or one next to it; rerun to retry"


def write_atomic(path: Path, text: str) -> None:
    # the part mark lets a later run recognise and remove leftovers of a killed one
    fileio.write_atomic(path, text, tmp_suffix=f"{PART_MARK}{os.getpid()}")


def _convert(source: Path | bytes, dst: str,
             settings: EncodeSettings) -> tuple[str | None, float]:
    """Worker: convert one video. Returns (None, or the reason it failed; CPU seconds used)."""
    path = Path(dst)
    start = time.process_time()  # all threads of this worker process
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        transcode(source, path, settings)
        reason = None
    except TranscodeError as e:
        reason = str(e)
    except Exception as e:  # a decoder/encoder surprise must not stop the batch
        reason = f"{type(e).__name__}: {' '.join(str(e).split())}"
    return reason, time.process_time() - start


def _remove_stale_parts(out: Path) -> None:
    """Temp outputs left by a killed run (only our own hidden '.<name>.part-<pid>' files)."""
    for folder, _, files in os.walk(out):
        for f in files:
            if f.startswith(".") and PART_MARK in f:
                Path(folder, f).unlink(missing_ok=True)


def _sources(jobs: list[Job], failures: list[dict]) -> Iterator[tuple[Job, Path | bytes]]:
    """Each job with what to convert: the file, or the bytes of its archive member.

    Archive members are read in archive order, one pass per archive.
    """
    by_archive: dict[Path, dict[str, Job]] = defaultdict(dict)
    for job in jobs:
        if job.member is None:
            yield job, job.source
        else:
            by_archive[job.source][job.member] = job
    for archive, members in by_archive.items():
        pending = dict(members)
        try:
            for name, data in iter_members(archive, set(members)):
                if name in pending and data is not None:
                    yield pending.pop(name), data
        except ArchiveReadError as e:
            failures += [{"path": j.name, "reason": str(e)} for j in pending.values()]
            continue
        failures += [{"path": j.name, "reason": "entry vanished from the archive"}
                     for j in pending.values()]


def _pool(workers: int) -> ProcessPoolExecutor:
    # forkserver: workers start clean (no threads or locks inherited from the caller) and
    # fast (forked from a server that has imported this module once; spawn costs ~1 s).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(workers, mp_context=context)


def _check_settings(out: Path, settings: EncodeSettings) -> None:
    report = out / REPORT
    if not report.exists():
        return
    try:
        before = json.loads(report.read_text(encoding="utf-8")).get("settings", {})
    except (OSError, ValueError):
        return
    before.setdefault("encoding", "x264")  # reports older than --encoding: x264's defaults
    for key in ("short_side", "crf", "encoding"):
        if key in before and before[key] != getattr(settings, key):
            raise LayoutError(
                f"{out} holds videos made with {key.replace('_', ' ')} {before[key]}, not "
                f"{getattr(settings, key)}; rerun with --{key.replace('_', '-')} {before[key]} or use a new --out")


def run(plan: Plan, out: Path, settings: EncodeSettings, workers: int | None = None,
        progress: bool = True) -> dict:
    """Convert `plan` into `out`; write lists, labels.txt and the report; return the report."""
    start = time.monotonic()
    workers = max(1, workers or os.cpu_count() or 1)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    _remove_stale_parts(out)
    todo = [j for j in plan.jobs if not (out / j.out).exists()]
    failures: list[dict] = list(plan.failed)
    report = {
        "dataset": plan.dataset, "out": str(out.resolve()), "finished": False,
        "settings": asdict(settings), "x264_options": settings.x264_options(), "workers": workers,
        "converted": 0, "skipped": len(plan.jobs) - len(todo), "cpu_seconds": 0.0,
        "failed": failures, "missing": plan.missing, **plan.notes,
    }
    write_atomic(out / REPORT, json.dumps(report, indent=1))
    bar = tqdm(total=len(plan.jobs), initial=report["skipped"], unit="video",
               desc=f"vidpeft-prep {plan.dataset}", dynamic_ncols=True,
               disable=None if progress else True)  # None: no bar in a log file, only on a terminal
    sources = _sources(todo, failures)
    pool = _pool(workers)
    running: dict[Future, Job] = {}
    try:
        while True:
            while len(running) < 2 * workers and (item := next(sources, None)):
                job, source = item
                running[pool.submit(_convert, source, str(out / job.out), settings)] = job
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    reason, cpu = future.result()
                    report["cpu_seconds"] += cpu
                except BrokenProcessPool:  # a worker died (a decoder crash?): fail its batch
                    failures += [{"path": j.name, "reason": CRASH} for j in running.values()]
                    running.clear()
                    pool.shutdown(cancel_futures=True)
                    pool = _pool(workers)
                    break
                job = running.pop(future)
                if reason is None:
                    report["converted"] += 1
                else:
                    failures.append({"path": job.name, "reason": reason})
            # failures found while reading archives count as finished jobs too
            finished = report["skipped"] + report["converted"] + len(failures) - len(plan.failed)
            bar.set_postfix(failed=len(failures), refresh=False)
            bar.update(finished - bar.n)
        pool.shutdown()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        report["seconds"] = round(time.monotonic() - start, 2)
        write_atomic(out / REPORT, json.dumps(report, indent=1))
        raise
    finally:
        bar.close()
    report["lists"] = _write_lists(plan, out)
    report["finished"] = True
    report["cpu_seconds"] = round(report["cpu_seconds"], 2)
    report["seconds"] = round(time.monotonic() - start, 2)
    write_atomic(out / REPORT, json.dumps(report, indent=1))
    return report


def _write_lists(plan: Plan, out: Path) -> dict[str, int]:
    """Annotation lists with every video whose output exists; labels.txt. Returns line counts."""
    counts = {}
    for name, entries in plan.lists.items():
        lines = [f"{path} {label}\n" for path, label in entries if (out / path).exists()]
        write_atomic(out / name, "".join(lines))
        counts[name] = len(lines)
    write_atomic(out / "labels.txt", "".join(f"{c}\n" for c in plan.labels))
    return counts
