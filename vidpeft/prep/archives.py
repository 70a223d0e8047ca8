"""Read .rar archives (RAR4 and RAR5, stored or compressed entries) through libarchive-c."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator


class ArchiveReadError(Exception):
    """An archive cannot be read; the message names it and says why (one line)."""


def _libarchive():
    try:
        import libarchive
        import libarchive.exception  # noqa: F401  (also loads the C library)
    except (ImportError, OSError) as e:
        raise ArchiveReadError(
            f"reading .rar files needs libarchive-c and the system libarchive "
            f"(pip install libarchive-c; apt-get install libarchive13), "
            f"or extract the archives first ({e})") from None
    return libarchive


def iter_members(path: Path, wanted: set[str] | None = None) -> Iterator[tuple[str, bytes | None]]:
    """Yield (entry name, data) for each file entry of `path`, in archive order.

    Data is read only for names in `wanted` (None = read nothing, just list the names).
    """
    libarchive = _libarchive()
    try:
        with libarchive.file_reader(str(path)) as archive:
            for entry in archive:
                if not entry.isfile:
                    continue
                name = entry.pathname
                wanted_now = wanted is not None and name in wanted
                yield name, b"".join(entry.get_blocks()) if wanted_now else None
    except libarchive.exception.ArchiveError as e:
        why = " ".join(str(getattr(e, "msg", None) or e).split())
        raise ArchiveReadError(f"{path}: cannot read the archive ({why}); check the download "
                               f"or extract it with another tool") from None


def list_members(path: Path) -> list[str]:
    return [name for name, _ in iter_members(path)]
