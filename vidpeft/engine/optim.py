"""Optimiser (SGD or AdamW, optional layer-wise lr decay) and the warm-up + cosine schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..methods import blocks, canonical_key
from ..config.train import TrainConfig


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Depth of each parameter: 0 before the first block, i+1 in block i (or between blocks i and
    i+1), L+1 after the last block (final norm / fc_norm, head), as VideoMAE's
    get_num_layer_for_vit puts everything that is not embedding or block at the top."""
    owner = {}
    block_list = list(blocks(model))
    for index, block in enumerate(block_list):
        for p in block.parameters():
            owner[id(p)] = index + 1
    params = list(model.named_parameters())
    last_block = max((i for i, (_, p) in enumerate(params) if id(p) in owner), default=len(params))
    head = {id(p) for p in model.head.parameters()}
    ids, current = {}, 0
    for i, (name, p) in enumerate(params):
        current = owner.get(id(p), current)
        ids[name] = len(block_list) + 1 if id(p) in head or i > last_block else current
    return ids


def exempt(name: str, no_decay: set[str]) -> bool:
    """`name` is listed by the model's no_weight_decay(), whole or as its last dotted parts."""
    return any(name == entry or name.endswith("." + entry) for entry in no_decay)


def build_optimizer(model: nn.Module, train: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """Parameter groups by (weight decay, layer scale) over the trainable parameters only."""
    decay = train.weight_decay
    layer_decay = train.layer_decay or 1.0
    ids = layer_ids(model)
    depth = max(ids.values(), default=0)
    no_decay = model.no_weight_decay()
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        wd = 0.0 if p.ndim <= 1 or exempt(canonical_key(name), no_decay) else decay
        scale = layer_decay ** (depth - ids[name])
        groups.setdefault((wd, scale), []).append(p)
    param_groups = [{"params": ps, "weight_decay": wd, "lr_scale": scale, "lr": lr * scale}
                    for (wd, scale), ps in groups.items()]
    kernel = {"fused": True} if fused_kernels_fit(param_groups) else {"foreach": True}
    if train.optimizer.lower() == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=train.momentum or 0.0, **kernel)
    return torch.optim.AdamW(param_groups, lr=lr, betas=train.betas, **kernel)


# devices whose fused optimiser kernels were measured: one kernel per tensor for the whole update,
# where foreach on CPU is a loop of several kernels per tensor (Mona's 386 tensors on one CPU core:
# AdamW 2.7 against 9.9 ms a step, SGD 1.2 against 4.0 ms)
FUSED_DEVICES = ("cpu", "cuda")


def fused_kernels_fit(param_groups: list[dict]) -> bool:
    """Every parameter is a floating-point tensor on a device of FUSED_DEVICES."""
    params = [p for group in param_groups for p in group["params"]]
    return bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0, then cosine down to `min_ratio` × lr, stepped every optimiser step."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
