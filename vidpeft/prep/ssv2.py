"""Something-Something V2: `<id>.webm` files plus labels.json / train.json / validation.json.

Both label-file namings are accepted (`labels.json` or `something-something-v2-labels.json`,
and the same for train / validation). test.json has no labels; as the community does,
test.csv repeats the validation list. Videos keep their size by default (240 px high).
"""
from __future__ import annotations

import json
from pathlib import Path

from .plan import Job, LayoutError, Plan, find_file, index_videos, pick, pick_labels

DEFAULT_SHORT_SIDE = 0  # keep the original 240 px height
SPLITS = {"train": "train.csv", "validation": "val.csv"}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise LayoutError(f"{path}: not readable JSON ({e}); download it again") from None


def _label_file(src: Path, out: Path, part: str) -> Path:
    names = (f"{part}.json", f"something-something-v2-{part}.json")
    path = find_file(src, names, "SSv2 labels", skip=out)
    if path is None:
        raise LayoutError(f"no {names[0]} or {names[1]} under {src}; the SSv2 label files "
                          f"(usually in labels/) must be inside --src")
    return path


def _template_ids(path: Path, labels: str) -> tuple[list[str], dict[str, int], dict]:
    """Class names by id, template -> id, and the report note. labels.json is checked against the
    community map unless the user chose `--labels dataset` (its own ids) or a label file."""
    own = {template: int(i) for template, i in _read_json(path).items()}
    by_id = sorted(own, key=own.get)
    if labels == "dataset" and sorted(own.values()) != list(range(len(own))):
        raise LayoutError(f"{path}: its ids are not 0..{len(own) - 1}, so they cannot serve as label ids")
    classes, note = pick_labels(labels, "ssv2", by_id)
    ids = {template: i for i, template in enumerate(classes)}
    if labels == "community":
        for template, i in own.items():
            if ids.get(template) != i:
                raise LayoutError(f"{path}: {template!r} has id {i}, which does not match the SSv2 label "
                                  "map (annotations/sthv2.txt); is this SSv2? To use this file's own ids, "
                                  "pass --labels dataset")
    return classes, ids, note


def plan(src: Path, out: Path, labels: str = "community") -> Plan:
    """Jobs and lists for the SSv2 download in `src` (outputs will go to `out`).

    `labels`: the community map (labels.json must agree with it), `dataset` (labels.json's own ids)
    or a label file."""
    classes, ids, label_note = _template_ids(_label_file(src, out, "labels"), labels)
    lowered = {t.lower(): i for t, i in ids.items()}
    videos = index_videos(src, skip=out)
    jobs: dict[str, Job] = {}
    lists: dict[str, list[tuple[str, int]]] = {}
    missing: list[str] = []
    for part, list_name in SPLITS.items():
        path = _label_file(src, out, part)
        entries = _read_json(path)
        rows = lists[list_name] = []
        for n, entry in enumerate(entries):
            try:
                vid = str(entry["id"])
                template = entry["template"].replace("[", "").replace("]", "")
            except (KeyError, TypeError, AttributeError):
                raise LayoutError(f"{path}: entry {n} lacks 'id' or 'template'") from None
            label = ids.get(template, lowered.get(template.lower()))
            if label is None:
                raise LayoutError(f"{path}: entry {n} (id {vid}) has template {template!r}, "
                                  f"which is not in the {labels} label map")
            if vid not in videos:
                missing.append(f"{path.name}: {vid}")
                continue
            out_path = f"videos/{vid}.mp4"
            jobs.setdefault(out_path, Job(pick(videos[vid]), out_path))
            rows.append((out_path, label))
    lists["test.csv"] = list(lists["val.csv"])
    return Plan("ssv2", classes, list(jobs.values()), lists, missing,
                notes={"test_list": "same as val.csv (SSv2 test labels are not public)", "labels": label_note})
