"""The training run behind vidpeft-train: fit, validate, keep the best, then the multi-view test."""
from __future__ import annotations

import csv
import math
import random
import shutil
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from ..data import ClipNormalizer, DataConfig, VideoDataset, VideoMixup, build_loader, read_annotations
from ..errors import UserError
from ..fileio import write_atomic
from ..labels import read_label_file
from ..model import build_model, compile_model, load_adapter_weights, load_pretrained, save_adapter
from . import distributed as dist
from .checkpoint import load_last, save_last
from .config import TrainConfig, write_yaml
from .evaluate import evaluate, write_eval
from .optim import build_optimizer, warmup_cosine

LOG_FIELDS = ["epoch", "step", "lr", "train_loss", "skipped_videos", "val_top1", "val_top5", "epoch_seconds"]
# what a run writes into its work dir (a new run over an old one must not mix with it)
RUN_OUTPUTS = ("config.yaml", "last.pt", "log.csv", "eval.json", "best", "tensorboard")
# a run exists once it holds one of these; config.yaml and log.csv alone are a start that never
# finished an epoch, which a new run replaces
RUN_STATE = ("last.pt", "best", "eval.json")
# progress within the current epoch (last.pt holds it when SIGTERM stopped the run mid-epoch)
EPOCH_START = {"batch": 0, "loss_sum": 0.0, "count": 0, "skipped": 0}
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving last.pt; requeue with --resume auto


def holds_a_run(work_dir: Path) -> bool:
    return any((work_dir / name).exists() for name in RUN_STATE)


def clear_run(work_dir: Path) -> None:
    """Remove a previous run's outputs (only the names a run writes; other files stay)."""
    for name in RUN_OUTPUTS:
        path = work_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device, amp: str | bool | None):
    """By default fp16 on CUDA, bf16 on a CPU with native bf16 (AVX512-BF16 / AMX) and fp32 on
    other CPUs, where bf16 is emulated: a VideoMAE-S + LoRA step took 26.4 s in bf16 against
    1.4 s in fp32 on an AVX2 machine. `amp: bf16 | fp16` forces a type, `none` turns it off."""
    if amp in (None, False, "none", "off", "fp32"):
        return nullcontext(), None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(amp))
    if dtype is None:
        if device.type == "cuda":
            dtype = torch.float16
        elif native_cpu_bf16():
            dtype = torch.bfloat16
        else:
            return nullcontext(), None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    return torch.autocast(device.type, dtype=dtype), scaler


def precision_name(amp_context) -> str:
    """The type an `autocast` context computes in: bfloat16, float16 or float32."""
    return str(getattr(amp_context, "fast_dtype", "float32")).removeprefix("torch.")


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's check: AVX512-BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def class_names(data_root: Path, samples) -> list[str]:
    """labels.txt of the data root when vidpeft-prep wrote one, else ids as names."""
    path = data_root / "labels.txt"
    if path.is_file():
        names = read_label_file(path)
        top = max(s.label for s in samples)
        if top >= len(names):
            raise UserError(f"{path}: {len(names)} classes, but the lists use label {top}; "
                             "is labels.txt from another dataset?")
        return names
    return [str(i) for i in range(max(s.label for s in samples) + 1)]


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    if targets.ndim == 2:  # mixup/cutmix soft targets
        return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, targets, label_smoothing=smoothing)


def build_mixup(train: TrainConfig, num_classes: int) -> VideoMixup | None:
    if train.mixup <= 0 and train.cutmix <= 0:
        return None
    return VideoMixup(mixup_alpha=train.mixup, cutmix_alpha=train.cutmix, prob=train.mixup_prob,
                      switch_prob=train.mixup_switch_prob, label_smoothing=train.label_smoothing,
                      num_classes=num_classes)


def run(cfg: dict) -> dict:
    """Train as `cfg` says (the resolved config, written to WORK_DIR/config.yaml); return eval.json.

    SIGTERM (preemption) finishes the current optimiser step, saves last.pt and raises `Preempted`."""
    with StopSignal() as stop:
        return _run(cfg, stop)


def _run(cfg: dict, stop: "StopSignal") -> dict:
    device = dist.init()
    work_dir = Path(cfg["work_dir"])
    data_root = Path(cfg["data_root"])
    train_cfg, model_cfg = TrainConfig.from_recipe(cfg), cfg["model"]
    data_cfg = DataConfig.from_recipe(cfg)
    seed = train_cfg.seed
    seed_everything(seed)

    eval_every = train_cfg.eval_every  # 0: no validation, the last epoch is tested
    lists = {split: read_annotations(data_root / cfg["lists"][split], data_root)
             for split in ("train", "val", "test") if split != "val" or eval_every}
    overlap = shared_videos(lists["val"], lists["test"]) if eval_every else 0
    if overlap and not cfg.get("select_on_test"):
        raise UserError(
            f"{data_root / cfg['lists']['val']}: {overlap} of its videos are in the test list "
            f"{cfg['lists']['test']}, so choosing the best epoch on it selects on the test videos; use a held-out "
            "validation list (vidpeft-prep writes one), test the last epoch (--eval-every 0), or pass "
            "--select-on-test to reproduce a protocol that selected on the test list")
    labels = class_names(data_root, lists["train"])
    model = build_model(model_cfg["backbone"], model_cfg["method"], len(labels),
                        backbone_options=model_cfg.get("backbone_options") or {}, labels=labels,
                        seed=seed, **(model_cfg.get("options") or {}))
    check_input_fits(model, data_cfg, model_cfg["backbone"])
    pretrained = model_cfg.get("pretrained")
    if pretrained:
        report = load_pretrained(model, pretrained)
        if dist.is_main():
            print(report)
    elif dist.is_main():
        print("warning: no --pretrained checkpoint: the backbone starts from random weights (fine for a "
              "test run; fine-tuning needs pretrained weights)")
    if train_cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.to(device)
    if train_cfg.compile:
        compile_model(model, train_cfg.compile_backend)
    spec_updates = {"pretrained": str(Path(pretrained).resolve()) if pretrained else None,
                    "preprocess": _preprocess(data_cfg)}

    # uint8 clips from the workers, normalised on the device by the Trainer
    train_set = VideoDataset(lists["train"], "train", data_cfg, seed=seed, strict=train_cfg.strict, pixels=True)
    # validation only picks the best epoch: one centred view per video unless the recipe says otherwise
    val_cfg = data_cfg.override(test_clips=train_cfg.val_clips, test_crops=train_cfg.val_crops,
                                test_temporal=train_cfg.val_temporal)
    val_set = VideoDataset(lists["val"], "val", val_cfg, seed=seed) if eval_every else None
    batch = train_cfg.batch_size
    accumulation = train_cfg.resolve_accumulation(dist.world_size())
    drop_last = len(train_set) >= batch * dist.world_size()
    sampler = (DistributedSampler(train_set, shuffle=True, seed=seed, drop_last=drop_last)
               if dist.is_distributed() else None)
    loader = build_loader(train_set, batch, shuffle=True, num_workers=data_cfg.num_workers, sampler=sampler,
                          seed=seed, drop_last=drop_last)
    steps_per_epoch = max(1, len(loader) // accumulation)
    epochs = train_cfg.epochs
    effective_batch = batch * dist.world_size() * accumulation
    lr = resolve_lr(train_cfg, effective_batch)
    cfg["resolved"] = {"world_size": dist.world_size(), "batch_size": batch, "accumulation": accumulation,
                       "effective_batch_size": effective_batch, "lr": lr}
    optimizer = build_optimizer(model, train_cfg, lr)
    scheduler = warmup_cosine(optimizer, int(train_cfg.warmup_epochs * steps_per_epoch),
                              epochs * steps_per_epoch, train_cfg.min_lr_ratio)
    amp_context, scaler = autocast(device, train_cfg.amp)
    cfg["resolved"]["precision"] = precision_name(amp_context)
    trainer = Trainer(DistributedDataParallel(model) if dist.is_distributed() else model, optimizer, scheduler,
                      scaler, amp_context, build_mixup(train_cfg, len(labels)), train_cfg, accumulation, device,
                      ClipNormalizer(data_cfg.mean, data_cfg.std))

    progress = {"epoch": 0, "step": 0, "best_top1": -1.0, "best_epoch": None, **EPOCH_START}
    last_path = work_dir / "last.pt"
    if cfg.get("resume") and last_path.is_file():
        progress = {**EPOCH_START, **load_last(last_path, model, optimizer, scheduler, scaler)}
        if dist.is_main():
            print(f"resuming {last_path} at epoch {progress['epoch'] + 1}, batch {progress['batch']}")
            _truncate_log(work_dir / "log.csv", progress["epoch"])
    elif dist.is_main():
        clear_run(work_dir)  # --overwrite, or the leftovers of a start that never finished an epoch
        work_dir.mkdir(parents=True, exist_ok=True)
        write_yaml(work_dir / "config.yaml", cfg)
        (work_dir / "log.csv").write_text(",".join(LOG_FIELDS) + "\n", encoding="utf-8")
    if dist.is_main():
        _print_settings(cfg, train_cfg, steps_per_epoch)
    writer = _tensorboard(work_dir) if cfg.get("tensorboard") and dist.is_main() else None

    if overlap and dist.is_main():
        print(f"warning: --select-on-test: the best epoch is chosen on {cfg['lists']['val']}, which shares "
              f"{overlap} videos with the test list {cfg['lists']['test']}")
    stop.interruptible = False
    for epoch in range(progress["epoch"], epochs):
        started = time.perf_counter()
        loader.sampler.set_epoch(epoch, start=progress["batch"] * batch)
        finished = trainer.train_epoch(loader, epoch, epochs, progress, stop, last_path)
        if not finished:
            _save_last(last_path, model, trainer, progress)
            raise Preempted(f"stopped by SIGTERM in epoch {epoch + 1}, after batch {progress['batch']} of "
                            f"{len(loader)}; {last_path} holds the state")
        loss = round(dist.mean(progress["loss_sum"] / max(progress["count"], 1)), 6)
        skipped = int(sum(dist.gather(progress["skipped"])))
        if skipped and dist.is_main():
            print(f"warning: epoch {epoch + 1}: {skipped} unreadable training video(s) skipped (see the "
                  "warnings above)")
        row = {"epoch": epoch + 1, "step": progress["step"], "lr": optimizer.param_groups[0]["lr"],
               "train_loss": loss, "skipped_videos": skipped, "val_top1": "", "val_top5": ""}
        if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            stop.interruptible = True  # validation restarts after a resume: nothing to finish first
            try:
                metrics = evaluate(model, val_set, device, amp_context, views_per_batch=batch,
                                   num_workers=data_cfg.num_workers)
            except Preempted:
                _save_last(last_path, model, trainer, progress)  # the epoch's training is done
                raise Preempted(f"stopped by SIGTERM while validating epoch {epoch + 1}; {last_path} "
                                "holds the state") from None
            stop.interruptible = False
            row.update(val_top1=metrics["top1"], val_top5=metrics["top5"])
            if metrics["top1"] > progress["best_top1"]:  # every rank holds the same metrics
                progress.update(best_top1=metrics["top1"], best_epoch=epoch + 1)
                if dist.is_main():
                    check_finite(model, f"epoch {epoch + 1}", last_path)
                    save_adapter(model, work_dir / "best", **spec_updates)
        progress.update(epoch=epoch + 1, **EPOCH_START)
        row["epoch_seconds"] = round(time.perf_counter() - started, 2)
        if dist.is_main():
            _append_log(work_dir / "log.csv", row)
            _save_last(last_path, model, trainer, progress)
            print(f"epoch {epoch + 1}/{epochs}: train_loss {loss:.4f}"
                  + (f", val top-1 {row['val_top1']:.2f}%" if row["val_top1"] != "" else "")
                  + f", lr {row['lr']:.3g}, {row['epoch_seconds']:.1f} s", flush=True)
            if writer is not None:
                for key in ("train_loss", "val_top1", "lr"):
                    if row[key] != "":
                        writer.add_scalar(key, float(row[key]), epoch + 1)
        dist.barrier()
        if stop.requested:
            raise Preempted(f"stopped by SIGTERM after epoch {epoch + 1}; {last_path} holds the state")

    stop.interruptible = True  # the final test restarts from last.pt after a resume
    if not eval_every and dist.is_main():
        check_finite(model, f"epoch {epochs}", last_path)
        save_adapter(model, work_dir / "best", **spec_updates)
    selection = (f"epoch {progress['best_epoch']} of {epochs}: best val top-1 ({progress['best_top1']:.2f}%) on "
                 f"{cfg['lists']['val']}" if eval_every else f"last epoch ({epochs}), validation off")
    if overlap:
        selection += f", which shares {overlap} videos with the test list (--select-on-test)"
    result = final_test(model, work_dir, lists["test"], cfg, data_cfg, device, amp_context, selection,
                        selected_on_test=bool(overlap))
    dist.shutdown()
    return result


def resolve_lr(train: TrainConfig, effective_batch: int) -> float:
    """`lr` as given, or `base_lr` × effective batch / 256 (the linear scaling rule)."""
    if train.lr is not None:
        return train.lr
    return train.base_lr * effective_batch / 256


def check_input_fits(model: nn.Module, data_cfg: DataConfig, backbone: str) -> None:
    """Clip length and crop size the patch embedding can tile, checked before any work starts."""
    patch = tuple(getattr(getattr(model, "patch_embed", None), "patch_size", ()) or ())
    if not patch:
        return
    temporal, spatial = (patch[0], patch[1]) if len(patch) == 3 else (1, patch[0])
    for flag, value, step in (("--frames", data_cfg.frames, temporal), ("--input-size", data_cfg.input_size, spatial)):
        if value % step:
            lower, upper = value - value % step, value - value % step + step
            nearby = f"{lower} or {upper}" if lower else str(upper)
            raise UserError(f"{flag} {value}: {backbone} needs a multiple of {step} (e.g. {nearby})")


def check_finite(model: nn.Module, when: str, last_path: Path) -> None:
    """Refuse to save weights that hold NaN or inf (best/ never does)."""
    bad = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad:
        raise TrainingDiverged(f"{when}: non-finite weights ({bad[0]}, ...); not saved. {_last_good(last_path)}")


class Trainer:
    """One optimiser step at a time; every random draw of step i of epoch e comes from (seed, e, i, rank)."""

    def __init__(self, model, optimizer, scheduler, scaler, amp_context, mixup, train: TrainConfig,
                 accumulation: int, device, normalizer: ClipNormalizer) -> None:
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.amp_context, self.mixup, self.train, self.accumulation, self.device = (
            amp_context, mixup, train, accumulation, device)
        self.normalizer = normalizer
        self.trainable = [p for p in model.parameters() if p.requires_grad]

    def train_epoch(self, loader, epoch: int, epochs: int, progress: dict, stop: "StopSignal",
                    last_path: Path) -> bool:
        """Run the rest of `epoch` from batch progress['batch'], accumulating into `progress`.

        Returns False when SIGTERM asked to stop (after a complete optimiser step)."""
        self.model.train()
        started, seen = time.perf_counter(), 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=None if dist.is_main() else True,
                   dynamic_ncols=True, leave=False, initial=progress["batch"], total=len(loader))
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar, start=progress["batch"]):
            progress["skipped"] += len(batch.unreadable)
            boundary = (i + 1) % self.accumulation == 0
            if batch.inputs is not None:
                seed_step(self.train.seed, epoch, i, dist.rank())
                loss = self._forward_backward(batch, boundary)
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"epoch {epoch + 1}, batch {i + 1}: the training loss is {loss}; "
                                           f"stopped. {_last_good(last_path)}")
                progress["loss_sum"] += loss * len(batch.inputs)
                progress["count"] += len(batch.inputs)
                seen += len(batch.inputs)
            if boundary:
                self._optimizer_step()
                progress["step"] += 1
            progress["batch"] = i + 1
            bar.set_postfix(loss=f"{progress['loss_sum'] / max(progress['count'], 1):.4f}",
                            lr=f"{self.optimizer.param_groups[0]['lr']:.2e}",
                            clips_s=f"{seen / (time.perf_counter() - started):.1f}")
            if boundary and dist.any_true(stop.requested) and i + 1 < len(loader):
                bar.close()
                return False
        bar.close()
        return True

    def _forward_backward(self, batch, boundary: bool) -> float:
        clips = self.normalizer(batch.inputs.to(self.device, non_blocking=True))
        targets = batch.labels.to(self.device, non_blocking=True)
        if self.mixup is not None:
            clips, targets = self.mixup(clips, targets)
        model = self.model
        sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not boundary else nullcontext()
        with sync:
            with self.amp_context:
                loss = soft_target_loss(model(clips), targets, self.train.label_smoothing)
            scaled = loss / self.accumulation
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
        return loss.item()

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


def seed_step(seed: int, epoch: int, index: int, rank: int) -> None:
    """Seed torch, numpy and random from (seed, epoch, index, rank), so dropout, drop path and mixup
    draw the same numbers whatever happened before (a resume, data-loader workers starting up)."""
    state = np.random.SeedSequence([seed, epoch, index, rank]).generate_state(2, np.uint32)
    value = int(state[0]) << 32 | int(state[1])
    torch.manual_seed(value)
    np.random.seed(int(state[0]))
    random.seed(value)


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


def _save_last(path: Path, model, trainer: Trainer, progress: dict) -> None:
    if dist.is_main():
        check_finite(model, f"epoch {progress['epoch'] + 1}", path)
        save_last(path, model, trainer.optimizer, trainer.scheduler, trainer.scaler, progress)


def _last_good(last_path: Path) -> str:
    if not last_path.is_file():
        return "No checkpoint was saved yet; lower the learning rate (--lr) and start again"
    return (f"The last good state is {last_path}; lower the learning rate (--lr) and start again, or edit "
            f"{last_path.parent / 'config.yaml'} and --resume")


def _print_settings(cfg: dict, train: TrainConfig, steps_per_epoch: int) -> None:
    r = cfg["resolved"]
    print(f"work dir: {cfg['work_dir']}\neffective batch {r['effective_batch_size']} = world size "
          f"{r['world_size']} x batch {r['batch_size']} x accumulation {r['accumulation']}; lr {r['lr']:.4g}; "
          f"{steps_per_epoch} steps per epoch", flush=True)
    if train.warmup_epochs >= train.epochs:
        print(f"warning: {train.warmup_epochs:g} warm-up epochs with {train.epochs} epochs: the learning rate "
              "never leaves the warm-up (lower --warmup-epochs)")


def final_test(model, work_dir: Path, test_samples, cfg: dict, data_cfg, device, amp_context,
               selection: str, selected_on_test: bool = False) -> dict:
    """Score the test list with the checkpoint in best/ (the selected epoch)."""
    best = work_dir / "best"
    load_adapter_weights(model, best)
    test_set = VideoDataset(test_samples, "test", data_cfg, seed=0)
    result = evaluate(model, test_set, device, amp_context, views_per_batch=TrainConfig.from_recipe(cfg).batch_size,
                      num_workers=data_cfg.num_workers)
    result.update(checkpoint=str(best), model_selection=selection, selected_on_test=selected_on_test,
                  list=str(Path(cfg["data_root"]) / cfg["lists"]["test"]))
    if dist.is_main():
        write_eval(work_dir / "eval.json", result)
    return result


def shared_videos(a, b) -> int:
    """How many videos of list `a` are also in list `b` (by resolved path)."""
    return len({s.path.resolve() for s in a} & {s.path.resolve() for s in b})


def _preprocess(data_cfg) -> dict:
    return {k: v for k, v in asdict(data_cfg).items()
            if k in ("frames", "sampling", "stride", "input_size", "mean", "std", "test_clips", "test_crops",
                     "test_temporal")}


def _append_log(path: Path, row: dict) -> None:
    with path.open("a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, LOG_FIELDS).writerow(row)


def _truncate_log(path: Path, epochs_done: int) -> None:
    """Drop rows of epochs that last.pt does not hold (a kill between the log and the checkpoint)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if int(row["epoch"]) <= epochs_done]
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write)


def _tensorboard(work_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("warning: --tensorboard needs the tensorboard package (pip install tensorboard); logging to log.csv only")
        return None
    return SummaryWriter(str(work_dir / "tensorboard"))
