"""Helpers shared by the commands that print tables and draw plots (vidpeft-bench, vidpeft-table)."""
from __future__ import annotations

import io
from pathlib import Path

from .fileio import write_atomic


def markdown_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Lines of a Markdown table; `align` has one letter per column: l (left) or r (right)."""
    rule = "|" + "|".join("---" if a == "l" else "--:" for a in align) + "|"
    return ["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(cells) + " |" for cells in rows)]


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int = 110) -> None:
    """Write `fig` to `path` atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    write_atomic(path, buffer.getvalue())
