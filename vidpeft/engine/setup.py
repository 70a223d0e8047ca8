"""Setting a run up from its RunConfig: lists, model, loaders, optimisation; each returns typed objects."""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..config.run import Resolved, RunConfig
from ..data import VideoDataset, VideoMixup, build_loader, read_annotations
from ..data.annotations import Sample
from ..data.config import DataConfig, resolve_num_workers
from ..errors import UserError
from ..labels import read_label_file
from ..model import build_model, compile_model, load_pretrained
from . import distributed as dist
from .optim import build_optimizer, warmup_cosine
from .precision import autocast, precision_name


@dataclass(frozen=True)
class RunLists:
    train: list[Sample]
    val: list[Sample] | None  # None with validation off (eval_every 0)
    test: list[Sample]
    labels: list[str]
    overlap: int  # videos of the val list that are also in the test list


@dataclass(frozen=True)
class Loaders:
    train: DataLoader
    val_set: VideoDataset | None
    batch_size: int
    accumulation: int
    steps_per_epoch: int


@dataclass(frozen=True)
class Optimisation:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    amp_context: object
    scaler: torch.amp.GradScaler | None
    mixup: VideoMixup | None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def read_lists(cfg: RunConfig) -> RunLists:
    """The train/val/test lists; refuses selecting epochs on test videos unless --select-on-test."""
    validate = cfg.train.eval_every > 0
    read = {split: read_annotations(cfg.list_path(split), cfg.root)
            for split in ("train", "val", "test") if split != "val" or validate}
    overlap = shared_videos(read["val"], read["test"]) if validate else 0
    if overlap and not cfg.select_on_test:
        raise UserError(
            f"{cfg.list_path('val')}: {overlap} of its videos are in the test list {cfg.lists['test']}, so choosing "
            "the best epoch on it selects on the test videos; use a held-out validation list (vidpeft-prep writes "
            "one), test the last epoch (--eval-every 0), or pass --select-on-test to reproduce a protocol that "
            "selected on the test list")
    return RunLists(read["train"], read.get("val"), read["test"], class_names(cfg.root, read["train"]), overlap)


def shared_videos(a: list[Sample], b: list[Sample]) -> int:
    """How many videos of list `a` are also in list `b` (by resolved path)."""
    return len({s.path.resolve() for s in a} & {s.path.resolve() for s in b})


def class_names(data_root: Path, samples: list[Sample]) -> list[str]:
    """labels.txt of the data root when vidpeft-prep wrote one, else ids as names."""
    path = data_root / "labels.txt"
    top = max(s.label for s in samples)
    if not path.is_file():
        return [str(i) for i in range(top + 1)]
    names = read_label_file(path)
    if top >= len(names):
        raise UserError(f"{path}: {len(names)} classes, but the lists use label {top}; "
                        "is labels.txt from another dataset?")
    return names


def build_run_model(cfg: RunConfig, labels: list[str], device: torch.device) -> nn.Module:
    """The model of the run on `device`: built, input size checked, pretrained weights loaded."""
    spec = cfg.model
    model = build_model(spec.backbone, spec.method, len(labels), backbone_options=dict(spec.backbone_options),
                        labels=labels, seed=cfg.train.seed, **dict(spec.options))
    check_input_fits(model, cfg.data)
    if spec.pretrained:
        report = load_pretrained(model, spec.pretrained)
        if dist.is_main():
            print(report)
    elif dist.is_main():
        print("warning: no --pretrained checkpoint: the backbone starts from random weights (fine for a "
              "test run; fine-tuning needs pretrained weights)")
    if cfg.train.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.to(device)
    if cfg.train.compiles(device.type):
        compile_model(model, cfg.train.compile_backend)
    return model


def check_input_fits(model: nn.Module, data: DataConfig) -> None:
    """Clip length and crop size the patch embedding can tile, checked before any work starts."""
    patch = tuple(getattr(getattr(model, "patch_embed", None), "patch_size", ()) or ())
    if not patch:
        return
    temporal, spatial = (patch[0], patch[1]) if len(patch) == 3 else (1, patch[0])
    backbone = model.vidpeft_spec.backbone if hasattr(model, "vidpeft_spec") else type(model).__name__
    for flag, value, step in (("--frames", data.frames, temporal), ("--input-size", data.input_size, spatial)):
        if value % step:
            lower, upper = value - value % step, value - value % step + step
            nearby = f"{lower} or {upper}" if lower else str(upper)
            raise UserError(f"{flag} {value}: {backbone} needs a multiple of {step} (e.g. {nearby})")


def build_loaders(cfg: RunConfig, lists: RunLists, device_type: str) -> Loaders:
    """uint8 training clips from the workers (normalised on the device by the Trainer), or decoded frames and
    their augmentation plans where the run augments on its device; validation picks the best epoch: one
    centred view per video unless the recipe says otherwise."""
    train, seed = cfg.train, cfg.train.seed
    train_data = replace(cfg.data, device_augment=cfg.data.augments_on_device(device_type))
    train_set = VideoDataset(lists.train, "train", train_data, seed=seed, strict=train.strict, pixels=True)
    val_data = replace(cfg.data, test_clips=train.val_clips, test_crops=train.val_crops,
                       test_temporal=train.val_temporal)
    val_set = VideoDataset(lists.val, "val", val_data, seed=seed) if lists.val is not None else None
    batch, accumulation = train.batch_size, train.resolve_accumulation(dist.world_size())
    drop_last = len(train_set) >= batch * dist.world_size()
    sampler = (DistributedSampler(train_set, shuffle=True, seed=seed, drop_last=drop_last)
               if dist.is_distributed() else None)
    workers = resolve_num_workers(cfg.data.num_workers, cfg.data.decoder)
    loader = build_loader(train_set, batch, shuffle=True, num_workers=workers, sampler=sampler, seed=seed,
                          drop_last=drop_last)
    return Loaders(loader, val_set, batch, accumulation, max(1, len(loader) // accumulation))


def build_optimisation(cfg: RunConfig, model: nn.Module, loaders: Loaders, num_classes: int,
                       device: torch.device) -> tuple[Optimisation, Resolved]:
    """Optimiser, warm-up + cosine schedule, precision and mixup; and what the run resolved."""
    train = cfg.train
    effective_batch = loaders.batch_size * dist.world_size() * loaders.accumulation
    lr = train.resolve_lr(effective_batch)
    optimizer = build_optimizer(model, train, lr)
    steps = loaders.steps_per_epoch
    scheduler = warmup_cosine(optimizer, int(train.warmup_epochs * steps), train.epochs * steps, train.min_lr_ratio)
    amp_context, scaler = autocast(device, train.amp)
    mixup = (VideoMixup(mixup_alpha=train.mixup, cutmix_alpha=train.cutmix, prob=train.mixup_prob,
                        switch_prob=train.mixup_switch_prob, label_smoothing=train.label_smoothing,
                        num_classes=num_classes) if train.mixup > 0 or train.cutmix > 0 else None)
    resolved = Resolved(world_size=dist.world_size(), batch_size=loaders.batch_size, accumulation=loaders.accumulation,
                        effective_batch_size=effective_batch, lr=lr, precision=precision_name(amp_context),
                        num_workers=loaders.train.num_workers, compile=train.compiles(device.type),
                        device_augment=loaders.train.dataset.cfg.device_augment)
    return Optimisation(optimizer, scheduler, amp_context, scaler, mixup), resolved
