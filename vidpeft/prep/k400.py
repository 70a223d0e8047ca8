"""Kinetics-400: train.csv / validate.csv (or val.csv) / test.csv plus the video files.

Videos are named `<youtube_id>_<start:06d>_<end:06d>.mp4` and may sit in class folders
(`train/air drumming/…`) or flat; they are found by name anywhere under --src. Rows whose
video is absent are reported as missing; rows without a label (some test.csv releases) are
counted as unlabeled and not converted. Without a labelled test.csv, test.csv repeats val.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .plan import Job, LayoutError, Plan, find_file, index_videos, pick, pick_labels

DEFAULT_SHORT_SIDE = 320
CSVS = {"train.csv": ("train.csv",), "val.csv": ("validate.csv", "val.csv"),
        "test.csv": ("test.csv",)}
NEEDED = ("youtube_id", "time_start", "time_end")


def _norm(label: str) -> str:
    return " ".join(label.strip().strip('"').replace("_", " ").lower().split())


def _rows(path: Path) -> list[tuple[int, dict]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not set(NEEDED) <= set(reader.fieldnames or ()):
                raise LayoutError(f"{path}: header must include label,{','.join(NEEDED)}; "
                                  f"got {reader.fieldnames}")
            return list(enumerate(reader, start=2))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LayoutError(f"{path}: cannot read the CSV ({e})") from None


def _stem(path: Path, line: int, row: dict) -> str:
    try:
        start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except (TypeError, ValueError):
        raise LayoutError(f"{path}:{line}: time_start/time_end are not numbers") from None
    return f"{row['youtube_id']}_{start:06d}_{end:06d}"


def plan(src: Path, out: Path, labels: str = "community") -> Plan:
    """Jobs and lists for the Kinetics-400 download in `src` (outputs will go to `out`).

    `labels`: the community 400-class map, `dataset` (the classes the CSVs name, sorted: Kinetics-600/700
    and subsets), or a label file."""
    tables = {}
    for list_name, names in CSVS.items():
        path = find_file(src, names, "Kinetics-400 annotations", skip=out)
        if path is None:
            if list_name == "test.csv":
                continue
            raise LayoutError(f"no {' or '.join(names)} under {src}; put the Kinetics-400 "
                              f"annotation CSVs inside --src")
        tables[list_name] = (path, _rows(path))
    own = {}
    for _, rows in tables.values():
        for _, row in rows:
            if (row.get("label") or "").strip():
                own.setdefault(_norm(row["label"]), row["label"].strip().strip('"'))
    classes, label_note = pick_labels(labels, "k400", [own[k] for k in sorted(own)], key=_norm)
    ids = {_norm(c): i for i, c in enumerate(classes)}
    videos = index_videos(src, skip=out)
    jobs: dict[str, Job] = {}
    lists: dict[str, list[tuple[str, int]]] = {}
    missing: list[str] = []
    unlabeled = 0
    for list_name, (path, table) in tables.items():
        split = list_name[:-4]
        rows = lists[list_name] = []
        for line, row in table:
            label_text = row.get("label") or ""
            if not label_text.strip():
                unlabeled += 1
                continue
            label = ids.get(_norm(label_text))
            if label is None:
                raise LayoutError(f"{path}:{line}: label {label_text!r} is not one of the {len(classes)} "
                                  f"classes of the {labels} label map; for Kinetics-600/700 or a subset "
                                  "use --labels dataset")
            stem = _stem(path, line, row)
            found = videos.get(stem) or videos.get(row["youtube_id"])
            if not found:
                missing.append(f"{path.name}:{line}: {stem}")
                continue
            out_path = f"videos/{split}/{stem}.mp4"
            jobs.setdefault(out_path, Job(pick(found), out_path))
            rows.append((out_path, label))
    notes = {"unlabeled": unlabeled, "labels": label_note}
    if not lists.get("test.csv"):
        lists["test.csv"] = list(lists["val.csv"])
        notes["test_list"] = "same as val.csv (no labelled test.csv in --src)"
    return Plan("k400", classes, list(jobs.values()), lists, missing, notes=notes)
