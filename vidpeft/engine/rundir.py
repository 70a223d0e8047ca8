"""A run's work directory: what a run writes there, when a directory holds a run, and the log."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

from ..fileio import write_atomic

# what a run writes into its work dir (a new run over an old one must not mix with it)
RUN_OUTPUTS = ("config.yaml", "last.pt", "log.csv", "eval.json", "best", "tensorboard")
# a run exists once it holds one of these; config.yaml and log.csv alone are a start that never
# finished an epoch, which a new run replaces
RUN_STATE = ("last.pt", "best", "eval.json")
LOG_FIELDS = ["epoch", "step", "lr", "train_loss", "skipped_videos", "val_top1", "val_top5", "epoch_seconds"]


def holds_a_run(work_dir: Path) -> bool:
    return any((work_dir / name).exists() for name in RUN_STATE)


def clear_run(work_dir: Path) -> None:
    """Remove a previous run's outputs (only the names a run writes; other files stay)."""
    for name in RUN_OUTPUTS:
        path = work_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def start_log(path: Path) -> None:
    path.write_text(",".join(LOG_FIELDS) + "\n", encoding="utf-8")


def append_log(path: Path, row: dict) -> None:
    with path.open("a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, LOG_FIELDS).writerow(row)


def truncate_log(path: Path, epochs_done: int) -> None:
    """Drop rows of epochs that last.pt does not hold (a kill between the log and the checkpoint)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if int(row["epoch"]) <= epochs_done]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write)


def open_tensorboard(work_dir: Path):
    """A SummaryWriter in WORK_DIR/tensorboard, or None (with a warning) without the tensorboard package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("warning: --tensorboard needs the tensorboard package (pip install tensorboard); logging to log.csv only")
        return None
    return SummaryWriter(str(work_dir / "tensorboard"))
