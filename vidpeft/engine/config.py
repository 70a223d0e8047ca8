"""The resolved config of a run: a recipe (vidpeft.data.load_recipe) plus command-line overrides."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..fileio import write_atomic


def resolve(recipe: dict, overrides: dict[str, Any], sets: list[str]) -> dict:
    """The recipe, then flag overrides (dotted keys; None = not given), then `--set a.b=value`."""
    cfg = dict(recipe)
    for dotted, value in overrides.items():
        if value is not None:
            set_dotted(cfg, dotted, value)
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: write it as section.key=value, e.g. train.lr=0.01")
        dotted, text = item.split("=", 1)
        set_dotted(cfg, dotted.strip(), yaml.safe_load(text))
    return cfg


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def write_yaml(path: Path, cfg: dict) -> None:
    write_atomic(path, yaml.safe_dump(cfg, sort_keys=False))


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is this a vidpeft-train work dir?")
    return yaml.safe_load(path.read_text(encoding="utf-8"))
