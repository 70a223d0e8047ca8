"""What a dataset reader hands the runner: conversion jobs and the annotation lists to write."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..labels import label_map, read_label_file

VIDEO_EXTS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".flv")


class LayoutError(Exception):
    """The raw folder does not look like the dataset; the message says what was expected."""


@dataclass(frozen=True)
class Job:
    source: Path  # the video file, or the archive holding it when `member` is set
    out: str  # output path relative to OUT, e.g. "videos/train/abc.mp4"
    member: str | None = None

    @property
    def name(self) -> str:
        """How failures name the source."""
        return f"{self.source} :: {self.member}" if self.member else str(self.source)


@dataclass
class Plan:
    dataset: str
    labels: list[str]  # class names, index = label id
    jobs: list[Job]  # one per output, in annotation order
    lists: dict[str, list[tuple[str, int]]]  # "train.csv" -> [(output path, label id)]
    missing: list[str] = field(default_factory=list)  # annotation entries with no file
    failed: list[dict] = field(default_factory=list)  # found while planning (unreadable archive)
    notes: dict = field(default_factory=dict)  # extra facts for the report


def is_inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder.resolve())


def index_videos(root: Path, skip: Path | None = None,
                 exts: tuple[str, ...] = VIDEO_EXTS) -> dict[str, list[Path]]:
    """Every video file under `root` but outside `skip` (the output folder), by stem."""
    found: dict[str, list[Path]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not is_inside(Path(folder, d), skip)]
        for f in files:
            stem, ext = os.path.splitext(f)
            if ext.lower() in exts and not f.startswith("."):
                found.setdefault(stem, []).append(Path(folder, f))
    return found


def find_file(root: Path, names: tuple[str, ...], what: str,
              skip: Path | None = None) -> Path | None:
    """The one file under `root` (outside `skip`) named like one of `names`, or None.

    The first name that matches anything wins.
    """
    for name in names:
        hits = sorted(p for p in root.rglob(name) if p.is_file() and not is_inside(p, skip))
        if len(hits) > 1:
            raise LayoutError(f"{what}: found {len(hits)} files named {name!r} under {root} "
                              f"({hits[0]}, {hits[1]}, ...); point --src at one copy")
        if hits:
            return hits[0]
    return None


def pick(paths: list[Path]) -> Path:
    """One of several copies of the same video: the .mp4 if there is one, else the first."""
    return min(paths, key=lambda p: (p.suffix.lower() != ".mp4", str(p)))


def pick_labels(choice: str, dataset: str, own: list[str], key: Callable[[str], str] = str) -> tuple[list[str], dict]:
    """The label map to use: the community one (annotations/), the dataset's own classes (`own`, in
    label-id order), or a label file (line number = id). Returns it and a note for the report saying
    which was used and how it differs from the community map (`key` normalises names to compare)."""
    community = label_map(dataset)
    if choice == "community":
        classes = community
    elif choice == "dataset":
        classes = own
    else:
        path = Path(choice)
        if not path.is_file():
            raise LayoutError(f"--labels {choice}: no such label file (give community, dataset or a file "
                              "with one class name per line)")
        try:
            classes = read_label_file(path)
        except UserError as error:
            raise LayoutError(str(error)) from None
    ids = {key(c): i for i, c in enumerate(community)}
    added = [c for c in classes if key(c) not in ids]
    note = {"map": choice if choice in ("community", "dataset") else str(Path(choice).resolve()),
            "classes": len(classes), "same_as_community": classes == community,
            "not_in_community": added,
            "community_classes_absent": len(set(ids) - {key(c) for c in classes}),
            "renumbered": sum(1 for i, c in enumerate(classes) if key(c) in ids and ids[key(c)] != i)}
    return classes, note
