"""The `data:` and `test:` sections of a run (how clips are read, sampled, augmented, viewed) as a dataclass."""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from vidpeft.config.values import check_known, coerce_fields, option, require
from vidpeft.data.decode import DECODERS, DEVICE_DECODERS
from vidpeft.data.sampling import TEST_TEMPORAL, TRAIN_TEMPORAL
from vidpeft.data.transforms import IMAGENET_MEAN, IMAGENET_STD, parse_randaugment

# `test:` keys of a recipe -> DataConfig fields
TEST_KEYS = {"clips": "test_clips", "crops": "test_crops", "temporal": "test_temporal"}
# data.num_workers auto: at most this many loader workers per training process, the most measured
# (the GPU machine's 16 cores, README "Decoders and loader speed")
MAX_AUTO_WORKERS = 16


def config_key(name: str) -> str:
    """The recipe key of a DataConfig field: test_clips -> test.clips, frames -> data.frames."""
    return f"test.{name[5:]}" if name.startswith("test_") else f"data.{name}"


def is_ssv2(dataset: str | None) -> bool:
    """Something-Something V2 under any of its usual names (ssv2, sthv2, something-something-v2)."""
    name = re.sub(r"[^a-z0-9]", "", (dataset or "").lower())
    return name.startswith(("ssv2", "sthv2", "somethingsomethingv2"))


@dataclass(frozen=True)
class DataConfig:
    """The `data:` and `test:` sections of a run: how clips are read, sampled, augmented and viewed."""

    frames: int = option(8, "frames per clip", "--frames", view=True)
    sampling: str = option("dense", "dense (frames `stride` apart) or segment (one frame per segment)", "--sampling")
    stride: int = option(4, "frame stride of dense sampling", "--stride")
    train_temporal: str = option("uniform", "training clip placement: uniform or videomae (sampling.TRAIN_TEMPORAL)")
    input_size: int = option(224, "crop size in pixels", "--input-size")
    train_crop: str = option("multiscale", "training crop: multiscale or random_resized")
    scales: tuple[float, ...] = option((1.0, 0.875, 0.75, 0.66), "multiscale crop: sizes as fractions of the short side")
    fixed_crops: int = option(5, "multiscale crop positions: 5 (corners, centre) or 13 (more_fix_crop)")
    rrc_scale: tuple[float, float] = option((0.08, 1.0), "random resized crop: area fraction")
    rrc_ratio: tuple[float, float] = option((3 / 4, 4 / 3), "random resized crop: aspect ratio")
    flip: bool = option(False, "random horizontal flip (refused on SSv2)")
    randaugment: str | None = option(None, "timm RandAugment spec, e.g. rand-m7-n4-mstd0.5-inc1 (same ops on every frame)")
    random_erasing: float = option(0.0, "random erasing probability")
    repeated_aug: int = option(1, "training: augmented clips per decoded video (VideoMAE --num_sample)")
    device_augment: bool | None = option(None, "augment training clips on the training device: the loader workers "
                                         "decode and draw the random choices; RandAugment, crop, resize, flip, "
                                         "normalisation and erasing run where the model does (the same draws as on "
                                         "the CPU); auto (unset): on when training on a GPU, off on a CPU",
                                         "--device-augment")
    mean: tuple[float, float, float] = option(IMAGENET_MEAN, "input mean (R, G, B) of the pretrained weights")
    std: tuple[float, float, float] = option(IMAGENET_STD, "input std (R, G, B) of the pretrained weights")
    decoder: str = option("pyav", "video decoder: pyav (default; the fastest in benchmarks/data_speed.py), decord, "
                          "torchcodec (optional extra) or nvdec (NVIDIA GPUs, optional extra; decodes in the "
                          "training process: no loader workers)", "--decoder", view=True)
    num_workers: int | None = option(None, "data loader worker processes; auto (unset): the CPU cores this process "
                                     "may run on / the training processes on this machine (LOCAL_WORLD_SIZE), "
                                     f"at least 1, at most {MAX_AUTO_WORKERS}; 0 with nvdec", "--num-workers")
    test_clips: int = option(4, "temporal clips per test video", "--clips", view=True)
    test_crops: int = option(3, "spatial crops per test clip (1 = centre, 3 = left/centre/right)", "--crops", view=True)
    test_temporal: str = option("centred", "where the test clips sit: videomae (first to last frame, VideoMAE / "
                                "V-PETL code), mmaction (mmaction2 SampleFrames test mode) or centred (ours)",
                                "--temporal", view=True)
    dataset: str | None = option(None, "e.g. ssv2: some datasets forbid some augmentations")

    def __post_init__(self) -> None:
        for name in ("num_workers", "device_augment"):
            if getattr(self, name) == "auto":
                object.__setattr__(self, name, None)
        coerce_fields(self, "data")
        for name in ("scales", "rrc_scale", "rrc_ratio", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        choices = {"sampling": ("dense", "segment"), "train_crop": ("multiscale", "random_resized"),
                   "train_temporal": TRAIN_TEMPORAL, "test_temporal": TEST_TEMPORAL, "decoder": DECODERS,
                   "fixed_crops": (5, 13)}
        for name, allowed in choices.items():
            value = getattr(self, name)
            require(config_key(name), value in allowed,
                    f"{value!r}; must be one of {', '.join(str(a) for a in allowed)}")
        for name in ("frames", "stride", "input_size", "test_clips", "test_crops", "repeated_aug"):
            require(config_key(name), getattr(self, name) >= 1, f"{getattr(self, name)}; must be at least 1")
        require("data.num_workers", self.num_workers is None or self.num_workers >= 0,
                f"{self.num_workers}; must be >= 0 or auto")
        require("data.num_workers", not (self.num_workers and self.decoder in DEVICE_DECODERS),
                f"{self.num_workers}: decoder {self.decoder!r} decodes on the GPU in the training process, where "
                "loader workers cannot; use 0 or auto (which is 0 for it)")
        require("data.random_erasing", 0.0 <= self.random_erasing <= 1.0,
                f"{self.random_erasing}; a probability, between 0 and 1")
        require("data.mean", len(self.mean) == 3 and len(self.std) == 3, "mean and std need 3 values (R, G, B)")
        require("data.flip", not (self.flip and is_ssv2(self.dataset)),
                f"horizontal flip is refused for {self.dataset}: its labels encode left/right "
                "(e.g. 'pushing something from left to right'); set flip: false")
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

    def augments_on_device(self, device_type: str) -> bool:
        """Whether vidpeft-train augments on its device: as set, else (auto) on CUDA, where a worker's CPU is
        what runs out (the videomae recipe's RandAugment took 80-90 % of it) and the device has time to spare."""
        return self.device_augment if self.device_augment is not None else device_type == "cuda"

    def override(self, **options: Any) -> "DataConfig":
        """A copy with the given options changed; None values (unset CLI options) are ignored."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any], **overrides: Any) -> "DataConfig":
        """Build from a recipe's `data:` and `test:` sections (see `load_recipe`), then overrides."""
        data, test = dict(recipe.get("data") or {}), dict(recipe.get("test") or {})
        check_known("data", data, [f.name for f in fields(cls) if not f.name.startswith("test_")])
        check_known("test", test, TEST_KEYS)
        options = {**data, **{TEST_KEYS[key]: value for key, value in test.items()}}
        return cls(**options).override(**overrides)

    def sections(self) -> dict[str, dict[str, Any]]:
        """The `data:` and `test:` sections as config.yaml holds them (from_recipe's inverse)."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        values["num_workers"] = "auto" if self.num_workers is None else self.num_workers
        return {"data": {k: v for k, v in values.items() if not k.startswith("test_")},
                "test": {key: values[name] for key, name in TEST_KEYS.items()}}


def resolve_num_workers(num_workers: int | None, decoder: str = "pyav") -> int:
    """Loader workers of this process: `num_workers` when set; auto (None): 0 for a decoder of
    DEVICE_DECODERS (it decodes on the GPU, in this process), else the CPU cores this process may
    run on, shared among the training processes of this machine (torchrun's LOCAL_WORLD_SIZE), at least 1
    and at most MAX_AUTO_WORKERS (one worker's clips scale with workers up to the cores, data_speed.py)."""
    if num_workers is not None:
        return num_workers
    if decoder in DEVICE_DECODERS:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(MAX_AUTO_WORKERS, cores // processes))
