"""Where a clip's CPU time goes (benchmarks/data_speed.py --breakdown). The loader calls
`lap(stage)` after each stage; inside `timing()` the CPU time since the previous lap is added to
that stage, outside it a lap costs one global lookup."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

_active: "StageTimes | None" = None


class StageTimes:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._last = time.process_time()

    def lap(self, stage: str) -> None:
        now = time.process_time()
        self.seconds[stage] += now - self._last
        self._last = now


def lap(stage: str) -> None:
    """The CPU time since the previous lap was spent on `stage` (recorded only inside timing())."""
    if _active is not None:
        _active.lap(stage)


@contextmanager
def timing() -> Iterator[StageTimes]:
    """Record laps (this process) into the StageTimes yielded."""
    global _active
    previous, _active = _active, StageTimes()
    try:
        yield _active
    finally:
        _active = previous
