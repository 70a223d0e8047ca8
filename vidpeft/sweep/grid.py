"""A sweep grid file: backbones x methods (with options) x datasets x seeds, each cell one vidpeft-train run.

    root: sweeps/demo                 # cells go in ROOT/<dataset>__<backbone>__<method>__seed<N>
    backbones: [videomae-b, videoswin-b]      # or all, or {name: {flag: value}} (e.g. pretrained)
    methods: all                      # or [full, lora, {lora: {rank: 4}}, {bapat: [{patt_dim: 16}, {}]}]
    datasets:
      ssv2: data/ssv2                 # a folder written by vidpeft-prep, or
      motion: {root: ..., train: {flag: value}, generate: {layout: k400, ...}}
    seeds: [0, 1, 2]
    train: {epochs: 90, batch-size: 64, pretrained: ckpt.pth}   # vidpeft-train flags, shared
    launcher: {nproc_per_node: 8}     # run each cell under torchrun
    slurm: {partition: gpu, gres: "gpu:8", time: "2-00:00:00"}  # #SBATCH lines of --emit slurm

Relative paths are relative to the current directory, as on vidpeft-train's command line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import command
from ..fileio import shipped_or_path

KEYS = ("root", "backbones", "methods", "datasets", "seeds", "train", "launcher", "slurm")
DATASET_KEYS = ("root", "train", "generate")
SWEEPS_DIR = Path(__file__).resolve().parents[1] / "resources" / "configs" / "sweeps"  # -> configs/sweeps


@dataclass
class Dataset:
    name: str
    root: Path
    flags: dict = field(default_factory=dict)
    generate: dict | None = None  # make_dataset arguments: generated and prepared before the cells run


@dataclass
class Cell:
    name: str
    dataset: str
    backbone: str
    method: str
    options: dict
    seed: int
    work_dir: Path
    argv: list[str]                # the vidpeft-train command line
    refused: str | None = None     # why the method cannot run on this backbone (the cell is not run)


@dataclass
class Grid:
    path: Path
    root: Path
    datasets: list[Dataset]
    cells: list[Cell]
    slurm: dict = field(default_factory=dict)

    @property
    def runnable(self) -> list[Cell]:
        return [c for c in self.cells if c.refused is None]


def find_grid(name: str) -> Path:
    """A grid file path, or the name of a shipped one (configs/sweeps/NAME.yaml)."""
    return shipped_or_path(name, SWEEPS_DIR, "grid file")


def load_grid(name: str, root: str | None = None, nproc_per_node: int | None = None) -> Grid:
    path = find_grid(name)
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a grid is a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})")
    for key in ("backbones", "methods", "datasets"):
        if not spec.get(key):
            raise ValueError(f"{path}: {key}: missing or empty")
    sweep_root = Path(root or spec.get("root") or Path("sweeps") / path.stem)
    launcher = spec.get("launcher") or {}
    nproc = nproc_per_node or launcher.get("nproc_per_node")
    where = str(path)
    datasets = [_dataset(name, value, sweep_root, f"{where}: datasets.{name}")
                for name, value in _mapping(spec["datasets"], f"{where}: datasets").items()]
    backbones = _backbones(spec["backbones"], f"{where}: backbones")
    methods = _methods(spec["methods"], f"{where}: methods")
    seeds = spec.get("seeds", [0])
    seeds = seeds if isinstance(seeds, list) else [seeds]
    if not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"{where}: seeds: a list of integers, got {seeds}")
    shared = command.flag_args(spec.get("train") or {}, f"{where}: train")
    cells = []
    for dataset in datasets:
        data_flags = command.flag_args(dataset.flags, f"{where}: datasets.{dataset.name}.train")
        for backbone, backbone_flags in backbones.items():
            flags = shared + command.flag_args(backbone_flags, f"{where}: backbones.{backbone}") + data_flags
            for method, options in methods:
                refused = _refusal(backbone, method, options, f"{where}: methods.{method}")
                for seed in seeds:
                    name = "__".join([dataset.name, backbone, _label(method, options), f"seed{seed}"])
                    work_dir = sweep_root / name
                    argv = command.train_argv(backbone=backbone, method=method, options=options,
                                              data=str(dataset.root), work_dir=str(work_dir), seed=seed,
                                              flags=flags, nproc_per_node=nproc)
                    command.check_argv(argv, f"{where}: cell {name}")
                    cells.append(Cell(name, dataset.name, backbone, method, options, seed, work_dir, argv,
                                      refused))
    names = [c.name for c in cells]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ValueError(f"{where}: two cells are both named {duplicate}; give their options different values")
    return Grid(path, sweep_root, datasets, cells, dict(spec.get("slurm") or {}))


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {value!r}")
    return value


def _dataset(name: str, value: Any, sweep_root: Path, where: str) -> Dataset:
    if isinstance(value, str):
        return Dataset(name, Path(value))
    value = _mapping(value, where)
    unknown = sorted(set(value) - set(DATASET_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(DATASET_KEYS)})")
    root = Path(value["root"]) if value.get("root") else sweep_root / "data" / name
    return Dataset(name, root, dict(value.get("train") or {}), value.get("generate"))


def _registered(kind: str) -> list[str]:
    if kind == "backbone":
        from ..backbones import BACKBONES

        return BACKBONES.names()
    from ..methods import METHODS

    return METHODS.names()


def _check_name(kind: str, name: Any, where: str) -> str:
    names = _registered(kind)
    if name not in names:
        raise ValueError(f"{where}: unknown {kind} {name!r}: choose one of {', '.join(names)}, or all")
    return name


def _backbones(value: Any, where: str) -> dict[str, dict]:
    """{backbone: its own vidpeft-train flags}."""
    if value == "all":
        return {name: {} for name in _registered("backbone")}
    if isinstance(value, list):
        return {_check_name("backbone", name, where): {} for name in value}
    return {_check_name("backbone", name, where): dict(flags or {}) for name, flags in _mapping(value, where).items()}


def _methods(value: Any, where: str) -> list[tuple[str, dict]]:
    """[(method, options)] in order, without repeats; `all` expands to every registered method."""
    items = value if isinstance(value, list) else [value]
    pairs: list[tuple[str, dict]] = []
    for item in items:
        if item == "all":
            pairs += [(name, {}) for name in _registered("method")]
        elif isinstance(item, str):
            pairs.append((_check_name("method", item, where), {}))
        else:
            for name, variants in _mapping(item, where).items():
                _check_name("method", name, where)
                for options in variants if isinstance(variants, list) else [variants or {}]:
                    pairs.append((name, dict(_mapping(options, f"{where}.{name}"))))
    unique: list[tuple[str, dict]] = []
    for pair in pairs:
        if pair not in unique:
            unique.append(pair)
    return unique


def _refusal(backbone: str, method: str, options: dict, where: str) -> str | None:
    """Why `method` cannot attach to `backbone`, or None; an option it lacks is an error at `where`."""
    from ..model import refusal

    try:
        return refusal(backbone, method, **options)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from None


def _label(method: str, options: dict) -> str:
    """lora + {rank: 4, targets: [q, v]} -> lora-rank4-targetsq+v (a file name)."""
    parts = [method] + [f"{k}{'+'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                        for k, v in sorted(options.items())]
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", "-".join(parts))
