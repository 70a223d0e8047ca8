"""The training run behind vidpeft-train: fit, validate, keep the best, then the multi-view test."""
from __future__ import annotations

import csv
import random
import shutil
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

from ..data import DataConfig, VideoDataset, build_loader, read_annotations
from ..fileio import write_atomic
from ..labels import read_label_file
from ..model import build_model, compile_model, load_adapter_weights, load_pretrained, save_adapter
from . import distributed as dist
from .checkpoint import load_last, save_last
from .config import write_yaml
from .evaluate import evaluate, write_eval
from .optim import build_optimizer, warmup_cosine

LOG_FIELDS = ["epoch", "step", "lr", "train_loss", "skipped_videos", "val_top1", "val_top5", "epoch_seconds"]
# what a run writes into its work dir (a new run over an old one must not mix with it)
RUN_OUTPUTS = ("config.yaml", "last.pt", "log.csv", "eval.json", "best", "tensorboard")


def holds_a_run(work_dir: Path) -> bool:
    return any((work_dir / name).exists() for name in RUN_OUTPUTS)


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
    """bf16 on CPU, fp16 on CUDA by default; `amp: none` turns it off."""
    if amp in (None, False, "none", "off", "fp32"):
        return nullcontext(), None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(amp))
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    return torch.autocast(device.type, dtype=dtype), scaler


def class_names(data_root: Path, samples) -> list[str]:
    """labels.txt of the data root when vidpeft-prep wrote one, else ids as names."""
    path = data_root / "labels.txt"
    if path.is_file():
        names = read_label_file(path)
        top = max(s.label for s in samples)
        if top >= len(names):
            raise ValueError(f"{path}: {len(names)} classes, but the lists use label {top}; "
                             "is labels.txt from another dataset?")
        return names
    return [str(i) for i in range(max(s.label for s in samples) + 1)]


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    if targets.ndim == 2:  # mixup/cutmix soft targets
        return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, targets, label_smoothing=smoothing)


def build_mixup(train: dict, num_classes: int):
    mixup, cutmix = float(train.get("mixup") or 0), float(train.get("cutmix") or 0)
    if mixup <= 0 and cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=float(train.get("label_smoothing") or 0),
                 num_classes=num_classes)


def run(cfg: dict) -> dict:
    """Train as `cfg` says (the resolved config, written to WORK_DIR/config.yaml); return eval.json."""
    device = dist.init()
    work_dir = Path(cfg["work_dir"])
    data_root = Path(cfg["data_root"])
    train_cfg, model_cfg = cfg["train"], cfg["model"]
    data_cfg = DataConfig.from_recipe(cfg)
    seed = int(train_cfg.get("seed", 0))
    seed_everything(seed)

    lists = {split: read_annotations(data_root / cfg["lists"][split], data_root) for split in ("train", "val", "test")}
    labels = class_names(data_root, lists["train"])
    model = build_model(model_cfg["backbone"], model_cfg["method"], len(labels),
                        backbone_options=model_cfg.get("backbone_options") or {}, labels=labels,
                        seed=seed, **(model_cfg.get("options") or {}))
    pretrained = model_cfg.get("pretrained")
    if pretrained:
        report = load_pretrained(model, pretrained)
        if dist.is_main():
            print(report)
    if train_cfg.get("grad_checkpointing"):
        model.set_grad_checkpointing(True)
    model.to(device)
    if train_cfg.get("compile"):
        compile_model(model, str(train_cfg.get("compile_backend") or "inductor"))
    spec_updates = {"pretrained": str(Path(pretrained).resolve()) if pretrained else None,
                    "preprocess": _preprocess(data_cfg)}

    train_set = VideoDataset(lists["train"], "train", data_cfg, seed=seed, strict=bool(train_cfg.get("strict")))
    # validation only picks the best epoch: one centred view per video unless the recipe says otherwise
    val_cfg = data_cfg.override(test_clips=train_cfg.get("val_clips", 1), test_crops=train_cfg.get("val_crops", 1))
    val_set = VideoDataset(lists["val"], "val", val_cfg, seed=seed)
    batch = int(train_cfg["batch_size"])
    accumulation = int(train_cfg.get("accumulation") or 1)
    drop_last = len(train_set) >= batch * dist.world_size()
    sampler = (DistributedSampler(train_set, shuffle=True, seed=seed, drop_last=drop_last)
               if dist.is_distributed() else None)
    loader = build_loader(train_set, batch, shuffle=True, num_workers=data_cfg.num_workers, sampler=sampler,
                          seed=seed, drop_last=drop_last)
    steps_per_epoch = max(1, len(loader) // accumulation)
    epochs = int(train_cfg["epochs"])
    lr = resolve_lr(train_cfg, batch * dist.world_size() * accumulation)
    optimizer = build_optimizer(model, train_cfg, lr)
    scheduler = warmup_cosine(optimizer, int(float(train_cfg.get("warmup_epochs", 0)) * steps_per_epoch),
                              epochs * steps_per_epoch, float(train_cfg.get("min_lr_ratio", 0.0)))
    amp_context, scaler = autocast(device, train_cfg.get("amp", "bf16"))
    mixup = build_mixup(train_cfg, len(labels))
    smoothing = float(train_cfg.get("label_smoothing") or 0)
    ddp_model = DistributedDataParallel(model) if dist.is_distributed() else model

    progress = {"epoch": 0, "step": 0, "best_top1": -1.0, "best_epoch": None}
    last_path = work_dir / "last.pt"
    if cfg.get("resume") and last_path.is_file():
        progress = load_last(last_path, model, optimizer, scheduler, scaler)
        if dist.is_main():
            print(f"resuming {last_path} after epoch {progress['epoch']}")
            _truncate_log(work_dir / "log.csv", progress["epoch"])
    elif dist.is_main():
        if cfg.get("overwrite"):
            clear_run(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        write_yaml(work_dir / "config.yaml", cfg)
        (work_dir / "log.csv").write_text(",".join(LOG_FIELDS) + "\n", encoding="utf-8")
    writer = _tensorboard(work_dir) if cfg.get("tensorboard") and dist.is_main() else None

    eval_every = int(train_cfg.get("eval_every", 1))  # 0: no validation, the last epoch is tested
    if eval_every and dist.is_main() and _same_videos(lists["val"], lists["test"]):
        print(f"warning: {cfg['lists']['val']} and {cfg['lists']['test']} list the same videos (as SSv2 "
              "releases do): the best epoch is chosen on the test videos. Hold out a validation list "
              "(--val-list) or test the last epoch (--eval-every 0).")
    for epoch in range(progress["epoch"], epochs):
        started = time.perf_counter()
        loader.sampler.set_epoch(epoch)
        loss, skipped = train_one_epoch(ddp_model, loader, optimizer, scheduler, scaler, amp_context, mixup,
                                        smoothing, accumulation, device, epoch, epochs,
                                        float(train_cfg.get("clip_grad") or 0))
        progress["step"] += steps_per_epoch
        row = {"epoch": epoch + 1, "step": progress["step"], "lr": optimizer.param_groups[0]["lr"],
               "train_loss": loss, "skipped_videos": skipped, "val_top1": "", "val_top5": ""}
        if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            metrics = evaluate(model, val_set, device, amp_context, views_per_batch=batch,
                               num_workers=data_cfg.num_workers)
            row.update(val_top1=metrics["top1"], val_top5=metrics["top5"])
            if metrics["top1"] > progress["best_top1"]:  # every rank holds the same metrics
                progress.update(best_top1=metrics["top1"], best_epoch=epoch + 1)
                if dist.is_main():
                    save_adapter(model, work_dir / "best", **spec_updates)
        progress["epoch"] = epoch + 1
        row["epoch_seconds"] = round(time.perf_counter() - started, 2)
        if dist.is_main():
            _append_log(work_dir / "log.csv", row)
            save_last(last_path, model, optimizer, scheduler, scaler, progress)
            if writer is not None:
                for key in ("train_loss", "val_top1", "lr"):
                    if row[key] != "":
                        writer.add_scalar(key, float(row[key]), epoch + 1)
        dist.barrier()

    if not eval_every and dist.is_main():
        save_adapter(model, work_dir / "best", **spec_updates)
    selection = (f"epoch {progress['best_epoch']} of {epochs}: best val top-1 ({progress['best_top1']:.2f}%) on "
                 f"{cfg['lists']['val']}" if eval_every else f"last epoch ({epochs}), validation off")
    result = final_test(model, work_dir, lists["test"], cfg, data_cfg, device, amp_context, selection)
    dist.shutdown()
    return result


def resolve_lr(train: dict, effective_batch: int) -> float:
    """`lr` as given, or `base_lr` × effective batch / 256 (the linear scaling rule)."""
    if train.get("lr") is not None:
        return float(train["lr"])
    return float(train["base_lr"]) * effective_batch / 256


def train_one_epoch(model, loader, optimizer, scheduler, scaler, amp_context, mixup, smoothing: float,
                    accumulation: int, device, epoch: int, epochs: int, clip_grad: float) -> tuple[float, int]:
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    total, count, skipped, seen = 0.0, 0, 0, 0
    started = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not dist.is_main(), dynamic_ncols=True,
               leave=False)
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(bar):
        skipped += len(batch.unreadable)
        if batch.inputs is None:
            continue
        clips, targets = batch.inputs.to(device, non_blocking=True), batch.labels.to(device, non_blocking=True)
        if mixup is not None and len(clips) % 2 == 0:
            clips, targets = mixup(clips, targets)
        boundary = (i + 1) % accumulation == 0
        sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not boundary else nullcontext()
        with sync:
            with amp_context:
                loss = soft_target_loss(model(clips), targets, smoothing)
            (scaler.scale(loss / accumulation) if scaler else loss / accumulation).backward()
        if boundary:
            if scaler:
                scaler.unscale_(optimizer)
            if clip_grad > 0:
                nn.utils.clip_grad_norm_(trainable, clip_grad)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        total += loss.item() * len(clips)
        count += len(clips)
        seen += len(clips)
        bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                        clips_s=f"{seen / (time.perf_counter() - started):.1f}")
    bar.close()
    skipped = int(sum(dist.gather(skipped)))
    if skipped and dist.is_main():
        print(f"warning: epoch {epoch + 1}: {skipped} unreadable training video(s) skipped (see the warnings above)")
    return round(dist.mean(total / max(count, 1)), 6), skipped


def final_test(model, work_dir: Path, test_samples, cfg: dict, data_cfg, device, amp_context,
               selection: str) -> dict:
    """Score the test list with the checkpoint in best/ (the selected epoch)."""
    best = work_dir / "best"
    load_adapter_weights(model, best)
    test_set = VideoDataset(test_samples, "test", data_cfg, seed=0)
    result = evaluate(model, test_set, device, amp_context, views_per_batch=int(cfg["train"]["batch_size"]),
                      num_workers=data_cfg.num_workers)
    result.update(checkpoint=str(best), model_selection=selection,
                  list=str(Path(cfg["data_root"]) / cfg["lists"]["test"]))
    if dist.is_main():
        write_eval(work_dir / "eval.json", result)
    return result


def _same_videos(a, b) -> bool:
    return sorted(str(s.path) for s in a) == sorted(str(s.path) for s in b)


def _preprocess(data_cfg) -> dict:
    return {k: v for k, v in asdict(data_cfg).items()
            if k in ("frames", "sampling", "stride", "input_size", "mean", "std", "test_clips", "test_crops")}


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
