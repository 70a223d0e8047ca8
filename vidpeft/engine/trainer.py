"""Trainer: the epoch loop of a run (optimiser steps, validation, keeping the best, last.pt, the log)
and what stops it (SIGTERM, a non-finite loss)."""
from __future__ import annotations

import math
import random
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..config.run import RunConfig
from ..data import ClipNormalizer
from ..data.device_augment import PlannedClip, apply_plans
from ..model import save_adapter
from . import distributed as dist
from .evaluate import evaluate
from .resume import save_last
from .rundir import append_log
from .setup import Loaders, Optimisation

# progress within the current epoch (last.pt holds it when SIGTERM stopped the run mid-epoch)
EPOCH_START = {"batch": 0, "loss_sum": 0.0, "count": 0, "skipped": 0}
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving last.pt; requeue with --resume auto


class Preempted(Exception):
    """SIGTERM stopped the run after saving last.pt; `--resume` (or `--resume auto`) continues it exactly."""


class TrainingDiverged(Exception):
    """The loss or the weights became NaN or inf; the message names where and the last good checkpoint."""


class StopSignal:
    """SIGTERM handling for a run: during training, finish the current optimiser step and stop; while
    validating, testing or setting up (work a resume redoes anyway), stop at once."""

    def __init__(self) -> None:
        self.requested = False
        self.interruptible = True

    def __enter__(self) -> "StopSignal":
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.requested = True
        if self.interruptible:
            raise Preempted("stopped by SIGTERM")

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)


class Trainer:
    """One optimiser step at a time; every random draw of step i of epoch e comes from (seed, e, i, rank)."""

    def __init__(self, cfg: RunConfig, model: nn.Module, optimisation: Optimisation, loaders: Loaders,
                 device: torch.device) -> None:
        self.cfg, self.train, self.model, self.loaders, self.device = cfg, cfg.train, model, loaders, device
        self.ddp = DistributedDataParallel(model) if dist.is_distributed() else model
        self.optimizer, self.scheduler = optimisation.optimizer, optimisation.scheduler
        self.amp_context, self.scaler, self.mixup = optimisation.amp_context, optimisation.scaler, optimisation.mixup
        self.accumulation = loaders.accumulation
        self.normalizer = ClipNormalizer(cfg.data.mean, cfg.data.std)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.last_path = cfg.work_path / "last.pt"
        self.writer = None  # a TensorBoard SummaryWriter when --tensorboard
        self.compile_started: float | None = None  # set by fit when the model is compiled

    def fit(self, progress: dict, stop: StopSignal) -> dict:
        """Train from `progress` (a fresh or resumed state) to the last epoch; returns the final progress."""
        stop.interruptible = False
        compiled = self.cfg.resolved is not None and self.cfg.resolved.compile
        self.compile_started = time.perf_counter() if compiled and dist.is_main() else None
        for epoch in range(progress["epoch"], self.train.epochs):
            started = time.perf_counter()
            loader = self.loaders.train
            loader.sampler.set_epoch(epoch, start=progress["batch"] * self.loaders.batch_size)
            if not self.train_epoch(epoch, progress, stop):
                self.save_last(progress)
                raise Preempted(f"stopped by SIGTERM in epoch {epoch + 1}, after batch {progress['batch']} of "
                                f"{len(loader)}; {self.last_path} holds the state")
            row = self.epoch_row(epoch, progress)
            if self.validates(epoch):
                self.validate(epoch, progress, row, stop)
            progress.update(epoch=epoch + 1, **EPOCH_START)
            row["epoch_seconds"] = round(time.perf_counter() - started, 2)
            if dist.is_main():
                self.record(row, progress)
            dist.barrier()
            if stop.requested:
                raise Preempted(f"stopped by SIGTERM after epoch {epoch + 1}; {self.last_path} holds the state")
        stop.interruptible = True  # the final test restarts from last.pt after a resume
        if not self.train.eval_every and dist.is_main():
            self.keep_best(f"epoch {self.train.epochs}")
        dist.barrier()  # best/ is written before any rank loads it for the final test
        return progress

    def train_epoch(self, epoch: int, progress: dict, stop: StopSignal) -> bool:
        """Run the rest of `epoch` from batch progress['batch'], accumulating into `progress`.

        Returns False when SIGTERM asked to stop (after a complete optimiser step)."""
        self.ddp.train()
        loader = self.loaders.train
        started, seen = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.train.epochs}", disable=None if dist.is_main() else True,
                   dynamic_ncols=True, leave=False, initial=progress["batch"], total=len(loader))
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar, start=progress["batch"]):
            progress["skipped"] += len(batch.unreadable)
            boundary = (i + 1) % self.accumulation == 0
            seen += self.step(batch, epoch, i, boundary, progress)
            if boundary:
                self._optimizer_step()
                progress["step"] += 1
                self.report_compile()
            progress["batch"] = i + 1
            bar.set_postfix(loss=f"{progress['loss_sum'] / max(progress['count'], 1):.4f}",
                            lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                            clips_s=f"{seen / (time.perf_counter() - started):.1f}")
            if boundary and dist.any_true(stop.requested) and i + 1 < len(loader):
                bar.close()
                return False
        bar.close()
        return True

    def step(self, batch, epoch: int, index: int, boundary: bool, progress: dict) -> int:
        """Forward and backward of one batch; returns the clips trained on. Under torchrun a rank whose
        batch holds no readable video still runs a backward (of zero) so the ranks' gradient
        reductions stay paired."""
        if batch.inputs is None and not dist.is_distributed():
            return 0
        seed_step(self.train.seed, epoch, index, dist.rank())
        clips = len(batch.labels)  # a label per clip: repeated augmentation's too, on the device or not
        loss = self._forward_backward(batch, boundary)
        if not clips:
            return 0
        if not math.isfinite(loss):
            raise TrainingDiverged(f"epoch {epoch + 1}, batch {index + 1}: the training loss is {loss}; "
                                   f"stopped. {last_good(self.last_path)}")
        progress["loss_sum"] += loss * clips
        progress["count"] += clips
        return clips

    def _forward_backward(self, batch, boundary: bool) -> float:
        empty = batch.inputs is None
        clips = self.device_clips(self.placeholder_clip() if empty else batch.inputs)
        targets = batch.labels.to(self.device, non_blocking=True) if not empty else torch.zeros(
            len(clips), dtype=torch.int64, device=self.device)
        if self.mixup is not None and not empty:
            clips, targets = self.mixup(clips, targets)
        model = self.ddp
        sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not boundary else nullcontext()
        with sync, running_batch_stats(model, len(clips) < 2):
            with self.amp_context:
                loss = soft_target_loss(model(clips), targets, self.train.label_smoothing)
            scaled = (loss * 0 if empty else loss) / self.accumulation
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        return loss.item()

    def device_clips(self, inputs: torch.Tensor | list[PlannedClip]) -> torch.Tensor:
        """Normalised clips on the device: uint8 clips normalised there, or decoded frames augmented
        there by their plans (`data.device_augment`)."""
        data = self.cfg.data
        if isinstance(inputs, list):
            return apply_plans(inputs, data.input_size, data.mean, data.std, self.device)
        return self.normalizer(inputs.to(self.device, non_blocking=True))

    def placeholder_clip(self) -> torch.Tensor:
        """A black clip of the training shape, for a backward of zero (see `step`)."""
        size = self.cfg.data.input_size
        return torch.zeros(1, 3, self.cfg.data.frames, size, size, dtype=torch.uint8)

    def report_compile(self) -> None:
        """After the first optimiser step of a compiled model: how long it took, compilation included."""
        if self.compile_started is not None:
            print(f"torch.compile: the first optimiser step took {time.perf_counter() - self.compile_started:.1f} s, "
                  "compilation included", flush=True)
            self.compile_started = None

    def _optimizer_step(self) -> None:
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.train.clip_grad:
            nn.utils.clip_grad_norm_(self.trainable, self.train.clip_grad)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def epoch_row(self, epoch: int, progress: dict) -> dict:
        loss = round(dist.mean(progress["loss_sum"] / max(progress["count"], 1)), 6)
        skipped = int(sum(dist.gather(progress["skipped"])))
        if skipped and dist.is_main():
            print(f"warning: epoch {epoch + 1}: {skipped} unreadable training video(s) skipped (see the "
                  "warnings above)")
        return {"epoch": epoch + 1, "step": progress["step"], "lr": self.optimizer.param_groups[0]["lr"],
                "train_loss": loss, "skipped_videos": skipped, "val_top1": "", "val_top5": ""}

    def validates(self, epoch: int) -> bool:
        every = self.train.eval_every
        return bool(every) and ((epoch + 1) % every == 0 or epoch + 1 == self.train.epochs)

    def validate(self, epoch: int, progress: dict, row: dict, stop: StopSignal) -> None:
        """Score the val list; keep best/ when the top-1 improves."""
        stop.interruptible = True  # validation restarts after a resume: nothing to finish first
        try:
            metrics = evaluate(self.model, self.loaders.val_set, self.device, self.amp_context,
                               views_per_batch=self.loaders.batch_size, num_workers=self.cfg.data.num_workers)
        except Preempted:
            self.save_last(progress)  # the epoch's training is done
            raise Preempted(f"stopped by SIGTERM while validating epoch {epoch + 1}; {self.last_path} "
                            "holds the state") from None
        stop.interruptible = False
        row.update(val_top1=metrics["top1"], val_top5=metrics["top5"])
        if metrics["top1"] > progress["best_top1"]:  # every rank holds the same metrics
            progress.update(best_top1=metrics["top1"], best_epoch=epoch + 1)
            if dist.is_main():
                self.keep_best(f"epoch {epoch + 1}")

    def keep_best(self, when: str) -> None:
        check_finite(self.model, when, self.last_path)
        pretrained = self.cfg.model.pretrained
        save_adapter(self.model, self.cfg.work_path / "best", pretrained=pretrained, preprocess=preprocess(self.cfg))

    def record(self, row: dict, progress: dict) -> None:
        append_log(self.cfg.work_path / "log.csv", row)
        self.save_last(progress)
        print(f"epoch {row['epoch']}/{self.train.epochs}: train_loss {row['train_loss']:.4f}"
              + (f", val top-1 {row['val_top1']:.2f}%" if row["val_top1"] != "" else "")
              + f", lr {row['lr']:.3g}, {row['epoch_seconds']:.1f} s", flush=True)
        if self.writer is not None:
            for key in ("train_loss", "val_top1", "lr"):
                if row[key] != "":
                    self.writer.add_scalar(key, float(row[key]), row["epoch"])

    def save_last(self, progress: dict) -> None:
        if dist.is_main():
            check_finite(self.model, f"epoch {progress['epoch'] + 1}", self.last_path)
            save_last(self.last_path, self.model, self.optimizer, self.scheduler, self.scaler, progress)


@contextmanager
def running_batch_stats(model: nn.Module, active: bool) -> Iterator[None]:
    """A batch of one clip (an unreadable video skipped, a short last batch) has no batch statistics:
    BatchNorm layers use their running ones for it, and do not update them."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training] if active else []
    for norm in norms:
        norm.eval()
    try:
        yield
    finally:
        for norm in norms:
            norm.train()


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    if targets.ndim == 2:  # mixup/cutmix soft targets
        return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, targets, label_smoothing=smoothing)


def seed_step(seed: int, epoch: int, index: int, rank: int) -> None:
    """Seed torch, numpy and random from (seed, epoch, index, rank), so dropout, drop path and mixup
    draw the same numbers whatever happened before (a resume, data-loader workers starting up)."""
    state = np.random.SeedSequence([seed, epoch, index, rank]).generate_state(2, np.uint32)
    value = int(state[0]) << 32 | int(state[1])
    torch.manual_seed(value)
    np.random.seed(int(state[0]))
    random.seed(value)


def check_finite(model: nn.Module, when: str, last_path: Path) -> None:
    """Refuse to save weights that hold NaN or inf (best/ never does)."""
    bad = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad:
        raise TrainingDiverged(f"{when}: non-finite weights ({bad[0]}, ...); not saved. {last_good(last_path)}")


def last_good(last_path: Path) -> str:
    if not last_path.is_file():
        return "No checkpoint was saved yet; lower the learning rate (--lr) and start again"
    return (f"The last good state is {last_path}; lower the learning rate (--lr) and start again, or edit "
            f"{last_path.parent / 'config.yaml'} and --resume")


def preprocess(cfg: RunConfig) -> dict:
    """The input settings a saved adapter records (adapter.json's preprocess)."""
    return {k: v for k, v in asdict(cfg.data).items()
            if k in ("frames", "sampling", "stride", "input_size", "mean", "std", "test_clips", "test_crops",
                     "test_temporal")}
