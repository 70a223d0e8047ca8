"""Recipes (`configs/*.yaml`): a run's defaults, with per-dataset and per-backbone entries merged in."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import UserError
from ..fileio import shipped_or_path
from .values import check_known

RECIPES_DIR = Path(__file__).resolve().parents[1] / "resources" / "configs"  # -> configs/
# what a recipe file may hold: the run's sections, and the entries merged in by dataset and backbone
RECIPE_SECTIONS = ("data", "test", "train", "backbone", "methods", "datasets", "backbones")


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, or the name of one under configs/ ('vpetl', 'videomae')."""
    return shipped_or_path(name_or_path, RECIPES_DIR, "recipe")


def load_recipe(name_or_path: str | Path, dataset: str | None = None, backbone: str | None = None) -> dict[str, Any]:
    """The recipe as a dict (data, test, train, ...) with the entries of `datasets:` for
    `dataset` and of `backbones:` for `backbone` merged in (a backbone entry is found by full
    name, e.g. 'videoswin-b', or family, 'videoswin'). The dataset name is kept as data.dataset;
    mean/std default to the backbone's (BackboneInfo)."""
    path = recipe_path(name_or_path)
    recipe = _read(path)
    per_dataset = recipe.pop("datasets", None) or {}
    per_backbone = recipe.pop("backbones", None) or {}
    if dataset is not None:
        _merge(recipe, per_dataset.get(dataset.lower(), {}))
        recipe.setdefault("data", {})["dataset"] = dataset.lower()
    if backbone is not None:
        from ..backbones import backbone_info

        info = backbone_info(backbone)
        for key in dict.fromkeys((info.family, backbone)):
            _merge(recipe, per_backbone.get(key, {}))
        data = recipe.setdefault("data", {})
        data.setdefault("mean", list(info.mean))  # the normalisation the pretrained weights expect
        data.setdefault("std", list(info.std))
    return recipe


def _read(path: Path) -> dict[str, Any]:
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(recipe, dict):
        raise UserError(f"{path}: a recipe must be a mapping with data:, test: and train: sections")
    try:
        check_known("recipe", recipe, RECIPE_SECTIONS)
    except UserError as error:
        raise type(error)(f"{path}: {error}") from None
    return recipe


def _merge(base: dict, extra: Mapping) -> dict:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base
