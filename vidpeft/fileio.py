"""Outputs appear only when complete: write beside the target under a hidden name, then rename."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def write_atomic(path: Path, data: str | bytes | Callable[[Path], object], tmp_suffix: str = ".tmp") -> None:
    """Write `data` (text, bytes, or a function writing the given temporary path) to `path` atomically."""
    tmp = path.with_name(f".{path.name}{tmp_suffix}")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    elif isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        data(tmp)
    os.replace(tmp, path)
