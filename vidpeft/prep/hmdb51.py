"""HMDB51: class folders of .avi files, or the per-class `<class>.rar` files, plus the splits.

The splits are the 153 files `<class>_test_split<k>.txt` (lines `<video name> <tag>`, tag
1 = train, 2 = test, 0 = unused), either extracted or inside `test_train_splits.rar`.
Every video tagged 1 or 2 in some split is converted; lists are written for each split
(`train_split{k}.csv`, `test_split{k}.csv`) and train/val/test.csv for the chosen split
(val = test, as the community does).
"""
from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

from .archives import ArchiveReadError, iter_members, list_members
from .plan import Job, LayoutError, Plan, find_file, index_videos, is_inside, pick_labels

DEFAULT_SHORT_SIDE = 320
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")
TAGS = {"1": "train", "2": "test"}

Source = tuple[Path, str | None]  # (file, None) or (archive, member)


def _parse_split(text: str, where: str) -> list[tuple[str, str]]:
    """(video name, tag) pairs; names may hold spaces, so split on the last one."""
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(None, 1)
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise LayoutError(f"{where}:{n}: expected '<video name> <0|1|2>', got {line!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def _split_texts(src: Path, out: Path) -> dict[str, str]:
    """Split file name -> text, from extracted files or test_train_splits.rar."""
    texts = {}
    for folder, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not is_inside(Path(folder, d), out)]
        for f in files:
            if SPLIT_FILE.match(f):
                texts[f] = Path(folder, f).read_text(encoding="utf-8", errors="replace")
    if texts:
        return texts
    archive = find_file(src, ("test_train_splits.rar",), "HMDB51 splits", skip=out)
    if archive is None:
        raise LayoutError(f"no split files under {src}: HMDB51 needs the extracted "
                          f"testTrainMulti_7030_splits/*_test_split<k>.txt or "
                          f"test_train_splits.rar inside --src")
    names = [m for m in list_members(archive) if SPLIT_FILE.match(Path(m).name)]
    return {Path(m).name: data.decode("utf-8", errors="replace")
            for m, data in iter_members(archive, set(names)) if data is not None}


def _sources(src: Path, out: Path, classes: set[str]) -> tuple[dict, list[dict]]:
    """{class: {video name: Source}} from class folders, else from `<class>.rar` files."""
    found: dict[str, dict[str, Source]] = defaultdict(dict)
    for paths in index_videos(src, skip=out).values():
        for p in paths:
            if p.parent.name in classes:
                found[p.parent.name][p.name] = (p, None)
    failed = []
    for archive in sorted(src.rglob("*.rar")):
        cls = archive.stem
        if cls not in classes or cls in found or is_inside(archive, out):
            continue
        try:
            members = list_members(archive)
        except ArchiveReadError as e:
            failed.append({"path": str(archive), "reason": str(e)})
            continue
        found[cls] = {Path(m).name: (archive, m) for m in members}
    if not found:
        outer = find_file(src, ("hmdb51_org.rar",), "HMDB51 videos", skip=out)
        hint = (f"extract {outer} first (it holds the 51 class .rar files)" if outer else
                "give the class folders (brush_hair/…) or the class .rar files")
        raise LayoutError(f"no HMDB51 videos under {src}: {hint}")
    return found, failed


def plan(src: Path, out: Path, split: int = 1, labels: str = "community") -> Plan:
    """Jobs and lists for the HMDB51 download in `src` (outputs will go to `out`).

    `labels`: the community map, `dataset` (the classes of the split files, sorted) or a label file."""
    texts = _split_texts(src, out)
    own = sorted({SPLIT_FILE.match(name)["cls"] for name in texts})
    classes, label_note = pick_labels(labels, "hmdb51", own)
    ids = {c: i for i, c in enumerate(classes)}
    found, failed = _sources(src, out, set(classes))
    broken = {Path(f["path"]).stem for f in failed}
    lists: dict[str, list[tuple[str, int]]] = {}
    jobs: dict[str, Job] = {}
    missing: set[str] = set()
    for name, text in sorted(texts.items()):
        m = SPLIT_FILE.match(name)
        cls, k = m["cls"], m["k"]
        if cls not in ids:
            raise LayoutError(f"{name}: {cls!r} is not a class of the {labels} label map "
                              "(annotations/hmdb51.txt by default; --labels dataset takes the split files' classes)")
        for video, tag in _parse_split(text, name):
            if tag not in TAGS or cls in broken:
                continue
            source = found.get(cls, {}).get(video)
            if source is None:
                missing.add(f"{cls}/{video}")
                continue
            out_path = f"videos/{cls}/{Path(video).stem}.mp4"
            jobs.setdefault(out_path, Job(source[0], out_path, member=source[1]))
            lists.setdefault(f"{TAGS[tag]}_split{k}.csv", []).append((out_path, ids[cls]))
    if f"train_split{split}.csv" not in lists:
        raise LayoutError(f"split {split} has no videos in {src}; choose --split "
                          f"{' or '.join(sorted({n[-5] for n in lists}))}")
    lists["train.csv"] = list(lists[f"train_split{split}.csv"])
    lists["val.csv"] = list(lists.get(f"test_split{split}.csv", []))
    lists["test.csv"] = list(lists["val.csv"])
    return Plan("hmdb51", classes, list(jobs.values()), lists, sorted(missing), failed,
                notes={"split": split, "test_list": f"val.csv = test.csv = test_split{split}", "labels": label_note})
