"""Augmentation on the training device (`--device-augment`) against the worker path it replaces: the same
draws for a fixed seed, the same clips (crop, resize, flip, normalisation, erasing exactly; RandAugment's
ops to within interpolation, each against timm's PIL op), and the same losses through vidpeft-train."""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import auto_augment

from vidpeft.cli import prep as prep_cli
from vidpeft.cli import train as train_cli
from vidpeft.config.recipes import load_recipe
from vidpeft.config.run import RunConfig
from vidpeft.data import ClipNormalizer, DataConfig, VideoDataset, read_annotations
from vidpeft.data.decode import open_video
from vidpeft.data.device_augment import RAND_OPS, PlannedClip, apply_plans
from vidpeft.data.transforms import _FILL, RAND_OPS as TIMM_OPS
from vidpeft.engine import setup
from vidpeft.synthetic import make_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("device_augment")
    make_dataset("k400", root / "raw", classes=2, per_class=4, size=(80, 48), frames=24, seed=4)
    assert prep_cli.main(["k400", "--src", str(root / "raw"), "--out", str(root / "data"), "--workers", "1"]) == 0
    return root / "data"


def _worker_and_device(data: Path, cfg: DataConfig, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, PlannedClip]:
    samples = read_annotations(data / "train.csv", data)
    cpu = VideoDataset(samples, "train", cfg, seed=7, pixels=True)[item][0]
    if cpu.dtype == torch.uint8:
        cpu = ClipNormalizer(cfg.mean, cfg.std)(cpu[None] if cpu.ndim == 4 else cpu)
    cpu = cpu.reshape(-1, *cpu.shape[-4:])
    planned = VideoDataset(samples, "train", replace(cfg, device_augment=True), seed=7, pixels=True)[item][0]
    device = apply_plans([planned], cfg.input_size, cfg.mean, cfg.std, torch.device("cpu"))
    return cpu, device, planned


@pytest.mark.parametrize("recipe,changes", [
    ("vpetl", {}),                                               # multi-scale crop at 13 positions
    ("videomae", {"randaugment": None, "random_erasing": 0.0}),  # random resized crop, flip, 2 repeats
    ("videomae", {"randaugment": None, "random_erasing": 1.0}),  # the erasing box and its noise
])
def test_geometry_flip_normalisation_and_erasing_equal_the_worker_path(data, recipe, changes):
    cfg = replace(DataConfig.from_recipe(load_recipe(recipe, "k400")), frames=4, stride=2, input_size=32,
                  num_workers=0, **changes)
    flips, smaller, full = 0, 0, open_video(read_annotations(data / "train.csv", data)[0].path).read(np.array([0])).shape[1:3]
    for item in [(e, i) for e in range(3) for i in range(4)]:
        cpu, device, planned = _worker_and_device(data, cfg, item)
        torch.testing.assert_close(device, cpu, rtol=0, atol=1e-6)
        # no RandAugment op: the worker hands over only the region of the crop boxes, which touch its edges
        height, width = planned.frames.shape[1:3]
        smaller += height * width < full[0] * full[1]
        assert min(p.box[0] for p in planned.plans) == 0 and max(p.box[0] + p.box[2] for p in planned.plans) == height
        assert min(p.box[1] for p in planned.plans) == 0 and max(p.box[1] + p.box[3] for p in planned.plans) == width
        flips += sum(plan.flip for plan in planned.plans)
        assert all((plan.erase is not None) == (cfg.random_erasing == 1.0) for plan in planned.plans)
    assert flips > 0 if cfg.flip else flips == 0
    assert smaller > 0


def test_randaugment_draws_are_the_worker_paths_and_the_clips_close(data):
    cfg = replace(DataConfig.from_recipe(load_recipe("videomae", "k400")), frames=4, stride=2, input_size=32,
                  num_workers=0, random_erasing=0.0, repeated_aug=1)
    ops = []
    for item in [(e, i) for e in range(4) for i in range(4)]:
        cpu, device, planned = _worker_and_device(data, cfg, item)
        ops += [name for plan in planned.plans for name, _ in plan.ops]
        # normalised units (std ~0.23 of 255): interpolation (bilinear against PIL's bicubic) moves few levels
        assert (device - cpu).abs().mean() < 0.05, planned.plans
    assert len(set(ops)) >= 5  # the draws cover the op set


def _frame() -> np.ndarray:
    """A natural-looking frame: smooth gradients, a disc and an edge (what RandAugment sees)."""
    y, x = np.mgrid[0:48, 0:64]
    frame = np.stack([x * 3, y * 4, (x + y) * 2], -1).astype(np.float64)
    frame[(x - 30) ** 2 + (y - 20) ** 2 < 150] = (220, 40, 90)
    frame[:, 50:] *= 0.5
    return frame.clip(0, 255).astype(np.uint8)


OP_ARGS = {"Rotate": (17.0,), "PosterizeIncreasing": (2,), "SolarizeIncreasing": (120,), "SolarizeAdd": (60,),
           "ColorIncreasing": (1.6,), "ContrastIncreasing": (0.4,), "BrightnessIncreasing": (1.5,),
           "SharpnessIncreasing": (1.8,), "ShearX": (-0.2,), "ShearY": (0.25,), "TranslateXRel": (0.3,),
           "TranslateYRel": (-0.2,)}


@pytest.mark.parametrize("name", sorted(TIMM_OPS))
def test_each_randaugment_op_against_timms_pil_op(name):
    frame = _frame()
    args = OP_ARGS.get(name, ())
    expected = np.asarray(auto_augment.NAME_TO_OP[name](Image.fromarray(frame), *args, fillcolor=_FILL,
                                                         resample=Image.BICUBIC)).astype(np.float64)
    video = torch.from_numpy(frame).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)  # two identical frames
    got = RAND_OPS[name](video, *args)
    assert got.dtype == torch.uint8 and got.shape == video.shape and torch.equal(got[0], got[1])
    diff = np.abs(got[0].permute(1, 2, 0).numpy().astype(np.float64) - expected)
    geometric = name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
    if geometric:  # bilinear against PIL's bicubic: at the edges most
        assert diff.mean() < 2.0 and np.mean(diff > 32) < 0.01, (name, diff.mean(), np.mean(diff > 32))
    else:  # colour ops: rounding only
        assert diff.max() <= 1, (name, diff.max())


def test_vidpeft_train_with_device_augment_learns_what_the_worker_path_learns(data, tmp_path):
    def losses(work: Path, *extra: str) -> list[str]:
        assert train_cli.main(["--backbone", "videomae-micro", "--method", "lora", "--data", str(data),
                               "--work-dir", str(work), "--epochs", "2", "--frames", "4", "--stride", "2",
                               "--input-size", "32", "--num-workers", "0", "--batch-size", "2", "--clips", "1",
                               "--crops", "1", "--amp", "none", "--eval-every", "0", *extra]) == 0
        with (work / "log.csv").open() as f:
            return [row["train_loss"] for row in csv.DictReader(f)]

    assert losses(tmp_path / "device", "--device-augment") == losses(tmp_path / "worker")


def test_auto_augments_on_the_device_when_training_on_a_gpu(data, tmp_path):
    """data.device_augment auto (the recipes' default): vidpeft-train on this CPU augments in the loader and
    records it; the same run's loaders built for a CUDA device hand over frames with their plans."""
    work = tmp_path / "run"
    assert train_cli.main(["--backbone", "videomae-micro", "--method", "lora", "--data", str(data), "--work-dir",
                           str(work), "--epochs", "1", "--frames", "4", "--stride", "2", "--input-size", "32",
                           "--num-workers", "0", "--batch-size", "2", "--clips", "1", "--crops", "1", "--amp", "none",
                           "--eval-every", "0"]) == 0
    cfg = RunConfig.read(work / "config.yaml")
    assert cfg.data.device_augment is None and cfg.resolved.device_augment is False
    lists = setup.read_lists(cfg)
    for device_type, planned in (("cpu", False), ("cuda", True)):
        dataset = setup.build_loaders(cfg, lists, device_type).train.dataset
        assert isinstance(dataset[(0, 0)][0], PlannedClip) == planned
    forced = replace(cfg, data=replace(cfg.data, device_augment=False))
    assert not isinstance(setup.build_loaders(forced, lists, "cuda").train.dataset[(0, 0)][0], PlannedClip)
