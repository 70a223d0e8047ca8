"""Rows of the benchmark table: runs grouped by backbone, method and setting, mean ± std over seeds, PPT,
and the published rows of a reference next to ours."""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .runs import Run

PPT_SCALE = 1e7  # V-PETL Bench's C
REFERENCES = {"vpetl": Path(__file__).resolve().parents[1] / "resources" / "reference" / "vpetl_video.json"}


def ppt(top1: float, trainable: int | float) -> float:
    """V-PETL Bench's performance-parameter trade-off: top-1 (as a fraction) x exp(-log10(P / 10^7 + 1))."""
    return top1 / 100 * math.exp(-math.log10(trainable / PPT_SCALE + 1))


def sample_std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Score:
    """One row's runs on one dataset."""

    top1: list[float]
    top5: list[float]
    seeds: list[int]
    runs: list[str]
    trainable: int
    reference: dict | None = None  # the published row's top1 / ppt on this dataset

    @property
    def top1_mean(self) -> float:
        return statistics.fmean(self.top1)

    @property
    def top1_std(self) -> float | None:
        return sample_std(self.top1)

    @property
    def top5_mean(self) -> float:
        return statistics.fmean(self.top5)

    @property
    def top5_std(self) -> float | None:
        return sample_std(self.top5)

    @property
    def ppt(self) -> float:
        return ppt(self.top1_mean, self.trainable)


@dataclass
class Row:
    backbone: str
    method: str
    variant: str
    trainable: int
    setting: tuple[tuple[str, str], ...]
    scores: dict[str, Score] = field(default_factory=dict)  # dataset -> score

    @property
    def label(self) -> str:
        return f"{self.method} ({self.variant})" if self.variant else self.method


@dataclass
class Table:
    rows: list[Row]
    datasets: list[str]                  # column order
    recipe_datasets: dict[str, str | None]
    reference: dict | None = None
    unmatched_reference: list[dict] = field(default_factory=list)

    @property
    def common_setting(self) -> dict[str, str]:
        """Setting fields every row shares (printed once); the others are shown per row."""
        values = {}
        for key, value in (self.rows[0].setting if self.rows else ()):
            if all(dict(r.setting).get(key) == value for r in self.rows):
                values[key] = value
        return values


def dataset_names(runs: list[Run]) -> dict[str, str]:
    """data_key -> column name: the data root's folder name, or the full key where two roots share it."""
    keys = list(dict.fromkeys(r.data_key for r in runs))
    short = {k: next(r.dataset for r in runs if r.data_key == k) for k in keys}
    test_list = {k: k.rsplit(":", 1)[1] for k in keys}
    names = {}
    for key in keys:
        clash = [k for k in keys if short[k] == short[key]]
        if len(clash) > 1:
            lists = {test_list[k] for k in clash}
            names[key] = f"{short[key]} ({test_list[key]})" if len(lists) == len(clash) else key
        else:
            names[key] = short[key]
    return names


def config_differences(runs: list[Run]) -> dict[Path, str]:
    """Per run, what sets its config apart from the other runs of its cell (same backbone, method,
    options, views and dataset) besides the seed: "" where they all agree. Runs of one cell are only
    averaged when this is equal; two runs of one configuration and seed are refused."""
    cells: dict[tuple, list[Run]] = {}
    for run in runs:
        cells.setdefault((run.backbone, run.method, run.variant, run.trainable, run.setting, run.data_key), []).append(run)
    labels = {}
    for cell in cells.values():
        configs = [dict(r.config) for r in cell]
        keys = sorted({k for c in configs for k in c if len({c2.get(k) for c2 in configs}) > 1})
        seen: dict[tuple, Path] = {}
        for run, config in zip(cell, configs):
            labels[run.path] = ", ".join(f"{k}={config.get(k, '-')}" for k in keys)
            twin = seen.setdefault((labels[run.path], run.seed), run.path)
            if twin != run.path:
                raise UserError(f"{twin} and {run.path} are the same configuration with the same seed "
                                f"({run.seed}); pass only one of them")
    return labels


def build_table(runs: list[Run], reference: str | None = None) -> Table:
    names = dataset_names(runs)
    differences = config_differences(runs)
    rows: dict[tuple, Row] = {}
    for run in sorted(runs, key=lambda r: (r.backbone, r.method, r.variant, r.seed)):
        setting = (*run.setting, ("config", differences[run.path]))
        key = (run.backbone, run.method, run.variant, run.trainable, setting)
        row = rows.setdefault(key, Row(run.backbone, run.method, run.variant, run.trainable, setting))
        score = row.scores.setdefault(names[run.data_key], Score([], [], [], [], run.trainable))
        score.top1.append(run.top1)
        score.top5.append(run.top5)
        score.seeds.append(run.seed)
        score.runs.append(str(run.path))
    recipe = {names[r.data_key]: r.recipe_dataset for r in runs}
    table = Table(list(rows.values()), list(dict.fromkeys(names[r.data_key] for r in runs)), recipe)
    if reference:
        attach_reference(table, load_reference(reference))
    return table


def load_reference(name: str) -> dict:
    if name not in REFERENCES:
        raise KeyError(f"unknown reference {name!r}: choose one of {', '.join(REFERENCES)}")
    return json.loads(REFERENCES[name].read_text(encoding="utf-8"))


def attach_reference(table: Table, reference: dict) -> None:
    """Each of our default-option rows gets the published row of its backbone and method on the same
    dataset (by the dataset vidpeft-prep recorded); published rows without a match are listed apart."""
    table.reference = reference
    matched = set()
    for row in table.rows:
        if row.variant:
            continue
        for dataset, score in row.scores.items():
            published = next((p for p in reference["rows"] if p["backbone"] == row.backbone
                              and p["method"] == row.method and table.recipe_datasets.get(dataset) in p), None)
            if published is not None:
                score.reference = published[table.recipe_datasets[dataset]]
                matched.add((published["backbone"], published["method"], table.recipe_datasets[dataset]))
    table.unmatched_reference = [p for p in reference["rows"] if not all(
        (p["backbone"], p["method"], d) in matched for d in reference["datasets"])]
