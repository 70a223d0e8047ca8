"""Outputs appear only when complete: write beside the target under a hidden name, then rename."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: Path, data: str | bytes | Callable[[Path], object], tmp_suffix: str = ".tmp") -> None:
    """Write `data` (text, bytes, or a function writing the given temporary path) to `path` atomically.

    The file is flushed to disk before the rename, so `path` holds the old or the new content, never a
    part; a failed write leaves `path` as it was and removes its temporary file. Every output gets the
    usual permissions (0644 under the common umask), whatever the writer used (safetensors: 0600)."""
    tmp = path.with_name(f".{path.name}{tmp_suffix}")
    try:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            data(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def shipped_or_path(name: str | os.PathLike, folder: Path, what: str) -> Path:
    """An existing file `name`, or the shipped `folder/NAME.yaml`; else a one-line error listing them."""
    from .errors import MissingFile

    path = Path(name)
    if path.is_file():
        return path
    shipped = folder / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    available = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "(none found)"
    raise MissingFile(f"no {what} {str(name)!r}: give a YAML file or one of {available}")
