"""Data options of a recipe (`configs/*.yaml`, sections `data:` and `test:`) as a dataclass."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from vidpeft.data.decode import DECODERS
from vidpeft.data.sampling import TEST_TEMPORAL, TRAIN_TEMPORAL
from vidpeft.data.transforms import IMAGENET_MEAN, IMAGENET_STD, parse_randaugment
from vidpeft.errors import UserError
from vidpeft.fileio import shipped_or_path

RECIPES_DIR = Path(__file__).resolve().parents[1] / "resources" / "configs"  # -> configs/
# `test:` keys of a recipe -> DataConfig fields
TEST_KEYS = {"clips": "test_clips", "crops": "test_crops", "temporal": "test_temporal"}


def is_ssv2(dataset: str | None) -> bool:
    """Something-Something V2 under any of its usual names (ssv2, sthv2, something-something-v2)."""
    name = re.sub(r"[^a-z0-9]", "", (dataset or "").lower())
    return name.startswith(("ssv2", "sthv2", "somethingsomethingv2"))


@dataclass(frozen=True)
class DataConfig:
    frames: int = 8
    sampling: str = "dense"  # dense | segment
    stride: int = 4  # dense only
    train_temporal: str = "uniform"  # uniform | videomae (sampling.TRAIN_TEMPORAL)
    input_size: int = 224
    train_crop: str = "multiscale"  # multiscale | random_resized
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)  # multiscale crop
    fixed_crops: int = 5  # multiscale crop positions: 5 (corners, centre) or 13 (more_fix_crop)
    rrc_scale: tuple[float, float] = (0.08, 1.0)  # random resized crop: area fraction
    rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # random resized crop: aspect ratio
    flip: bool = False
    randaugment: str | None = None  # e.g. "rand-m7-n4-mstd0.5-inc1"
    random_erasing: float = 0.0  # probability
    repeated_aug: int = 1  # training: augmented clips per decoded video (VideoMAE --num_sample)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    decoder: str = "pyav"  # pyav | decord | torchcodec; pyav measured fastest (benchmarks/data_speed.py)
    num_workers: int = 2
    test_clips: int = 4
    test_crops: int = 3
    test_temporal: str = "centred"  # centred | videomae | mmaction (sampling.TEST_TEMPORAL)
    dataset: str | None = None  # e.g. "ssv2": some datasets forbid some augmentations

    def __post_init__(self) -> None:
        for name in ("scales", "rrc_scale", "rrc_ratio", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        checks = [
            (self.sampling in ("dense", "segment"), f"sampling must be 'dense' or 'segment', got {self.sampling!r}"),
            (self.train_crop in ("multiscale", "random_resized"),
             f"train_crop must be 'multiscale' or 'random_resized', got {self.train_crop!r}"),
            (self.train_temporal in TRAIN_TEMPORAL,
             f"train_temporal must be one of {', '.join(TRAIN_TEMPORAL)}, got {self.train_temporal!r}"),
            (self.test_temporal in TEST_TEMPORAL,
             f"test temporal must be one of {', '.join(TEST_TEMPORAL)}, got {self.test_temporal!r}"),
            (self.decoder in DECODERS, f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}"),
            (min(self.frames, self.stride, self.input_size, self.test_clips, self.test_crops, self.repeated_aug) >= 1,
             "frames, stride, input_size, repeated_aug, test clips and test crops must be at least 1"),
            (self.fixed_crops in (5, 13), f"fixed_crops must be 5 or 13, got {self.fixed_crops}"),
            (0.0 <= self.random_erasing <= 1.0, f"random_erasing is a probability, got {self.random_erasing}"),
            (len(self.mean) == 3 and len(self.std) == 3, "mean and std need 3 values (R, G, B)"),
            (not (self.flip and is_ssv2(self.dataset)),
             f"horizontal flip is refused for {self.dataset}: its labels encode left/right "
             "(e.g. 'pushing something from left to right'); set flip: false"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        if self.randaugment:
            parse_randaugment(self.randaugment)

    @property
    def short_side_resize(self) -> int:
        """Test-time resize of the short side (then the crops are input_size squares)."""
        return self.input_size

    def views(self) -> dict[str, Any]:
        """What a test view is, for reports: frames, stride or segments, clips, crops."""
        temporal = {"stride": self.stride} if self.sampling == "dense" else {"segments": self.frames}
        return {"frames": self.frames, **temporal, "clips": self.test_clips, "crops": self.test_crops,
                "temporal": self.test_temporal}

    def override(self, **options: Any) -> "DataConfig":
        """A copy with the given options changed; None values (unset CLI options) are ignored."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any], **overrides: Any) -> "DataConfig":
        """Build from a recipe's `data:` and `test:` sections (see `load_recipe`), then overrides."""
        options = dict(recipe.get("data") or {})
        for key, value in (recipe.get("test") or {}).items():
            if key not in TEST_KEYS:
                raise UserError(f"unknown key {key!r} in the recipe's test: section; known: {', '.join(TEST_KEYS)}")
            options[TEST_KEYS[key]] = value
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UserError(f"unknown key(s) {', '.join(unknown)} in the recipe's data: section; known: {', '.join(sorted(known))}")
        return cls(**options).override(**overrides)


def _merge(base: dict, extra: Mapping) -> dict:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, or the name of one under configs/ ('vpetl', 'videomae')."""
    return shipped_or_path(name_or_path, RECIPES_DIR, "recipe")


def load_recipe(name_or_path: str | Path, dataset: str | None = None, backbone: str | None = None) -> dict[str, Any]:
    """The recipe as a dict (data, test, train, ...) with the entries of `datasets:` for
    `dataset` and of `backbones:` for `backbone` merged in (a backbone entry is found by full
    name, e.g. 'videoswin-b', or family, 'videoswin'). The dataset name is kept as data.dataset;
    mean/std default to the backbone's (BackboneInfo)."""
    path = recipe_path(name_or_path)
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(recipe, dict):
        raise UserError(f"{path}: a recipe must be a mapping with data:, test: and train: sections")
    per_dataset = recipe.pop("datasets", None) or {}
    per_backbone = recipe.pop("backbones", None) or {}
    if dataset is not None:
        _merge(recipe, per_dataset.get(dataset.lower(), {}))
        recipe.setdefault("data", {})["dataset"] = dataset.lower()
    if backbone is not None:
        from vidpeft.backbones import backbone_info

        info = backbone_info(backbone)
        for key in dict.fromkeys((info.family, backbone)):
            _merge(recipe, per_backbone.get(key, {}))
        data = recipe.setdefault("data", {})
        data.setdefault("mean", list(info.mean))  # the normalisation the pretrained weights expect
        data.setdefault("std", list(info.std))
    return recipe
