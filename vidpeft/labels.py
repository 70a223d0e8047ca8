"""The community label maps shipped in annotations/ (line number = label id)."""
from __future__ import annotations

from pathlib import Path

from .errors import UserError

LABEL_MAP_DIR = Path(__file__).parent / "resources" / "label_maps"
LABEL_MAPS = {"ssv2": "sthv2.txt", "k400": "kinetics400.txt", "hmdb51": "hmdb51.txt"}


def read_label_file(path: str | Path) -> list[str]:
    """Class names, one per line; blank lines are not allowed (they would shift the ids)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"{path}:{number}: empty class name; remove the blank line")
    return [line.strip() for line in lines]


def label_map(dataset: str) -> list[str]:
    """The class names of 'ssv2', 'k400' or 'hmdb51', in label-id order."""
    if dataset not in LABEL_MAPS:
        raise KeyError(f"no label map for {dataset!r}: choose one of {', '.join(LABEL_MAPS)}")
    return read_label_file(LABEL_MAP_DIR / LABEL_MAPS[dataset])
