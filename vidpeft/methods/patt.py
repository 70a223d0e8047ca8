"""PATT, V-PETL's parallel attention branch, as a wrapper of the fused qkv projection.

From the tokens that feed qkv: up(tanh(down(x))) gives one d-wide update per target slice,
added as K += s·dK, V += s·dV (the "kv" mode BAPAT uses). The up-projection is
zero-initialised by default so the network is unchanged at step 0; `init="benchmark"`
keeps PyTorch's default Linear initialisation, as the benchmark's code does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .base import MethodConfig, Wrapper, block_width, blocks, register_method
from .lora import SLICES

INITS = ("zero", "benchmark")


@dataclass
class PATTConfig(MethodConfig):
    patt_dim: int | None = field(default=None, metadata={
        "help": "PATT hidden width m (V-PETL: 128 on Video Swin, 32 on VideoMAE)"})
    patt_scale: float = field(default=0.8, metadata={"help": "PATT scale s of the K/V updates"})
    patt_targets: tuple[str, ...] = field(default=("k", "v"), metadata={
        "help": "PATT: the qkv slices updated, among q, k, v"})
    patt_init: str = field(default="zero", metadata={
        "help": "PATT up-projection init: zero (identity at step 0) or benchmark (PyTorch default, as V-PETL)"})

    def __post_init__(self) -> None:
        self.patt_targets = tuple(self.patt_targets)
        if not self.patt_targets or any(t not in SLICES for t in self.patt_targets):
            raise ValueError(f"PATT targets must be names among q, k, v; got {self.patt_targets}")
        if self.patt_init not in INITS:
            raise ValueError(f"patt_init must be one of {INITS}; got {self.patt_init!r}")


class ParallelAttention(Wrapper):
    def __init__(self, qkv: nn.Linear, dim: int, cfg: PATTConfig) -> None:
        super().__init__(qkv)
        self.dim = dim
        self.slots = sorted(SLICES[t] for t in cfg.patt_targets)
        self.scale = cfg.patt_scale
        self.down = nn.Linear(dim, cfg.patt_dim)
        self.act = nn.Tanh()
        self.up = nn.Linear(cfg.patt_dim, len(self.slots) * dim)
        if cfg.patt_init == "zero":
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        updates = (self.scale * self.up(self.act(self.down(x)))).split(self.dim, dim=-1)
        by_slot = dict(zip(self.slots, updates))
        zeros = None
        pieces = []
        for slot in range(3):
            if slot not in by_slot and zeros is None:
                zeros = updates[0].new_zeros(updates[0].shape)
            pieces.append(by_slot.get(slot, zeros))
        return self.base_layer(x) + torch.cat(pieces, dim=-1)


@register_method("patt", PATTConfig, "V-PETL parallel attention branch on K and V")
def attach(model: nn.Module, cfg: PATTConfig) -> None:
    for block in list(blocks(model)):
        block.attn.qkv = ParallelAttention(block.attn.qkv, block_width(block), cfg)
