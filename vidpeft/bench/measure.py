"""Process-level measuring helpers shared by vidpeft-bench and benchmarks/backbone_speed.py.

Every case runs in a fresh Python process so its peak memory is its own: on CPU the process's
maximum resident set (getrusage ru_maxrss), on a GPU torch.cuda.max_memory_allocated."""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable


def current_rss_mb() -> float:
    """The resident memory of this process now, in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """The maximum resident memory this process has had, in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def timed(fn: Callable[[], object], warmup: int, repeats: int) -> dict[str, float]:
    """Run `fn` warmup + repeats times; median and min wall seconds and median CPU seconds of the
    timed runs (CPU = user + system over all threads, less sensitive to other jobs' load)."""
    wall, cpu = [], []
    for i in range(warmup + repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if i >= warmup:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return {"median_s": statistics.median(wall), "min_s": min(wall), "cpu_s": statistics.median(cpu)}


def run_fresh(module_or_script: str, args: list[str], timeout: float | None = None) -> dict:
    """Run a worker in a new Python process and return the JSON object on its last stdout line.

    `module_or_script` is a module name (run with -m) or a path to a .py file. A failing worker
    raises RuntimeError carrying the last line of its stderr."""
    target = [module_or_script] if module_or_script.endswith(".py") else ["-m", module_or_script]
    proc = subprocess.run([sys.executable, *target, *args], capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        err = proc.stderr.strip().splitlines()
        raise RuntimeError(err[-1] if err else f"worker exited with status {proc.returncode}")
    return json.loads(lines[-1])
