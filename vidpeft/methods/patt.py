"""PATT, V-PETL's parallel attention branch, as a wrapper of the fused qkv projection.

From the tokens that feed qkv: up(tanh(down(x))) gives one d-wide update per target slice,
added as K += s·dK, V += s·dV (the "kv" mode BAPAT uses). The up-projection is
zero-initialised by default so the network is unchanged at step 0; `init="benchmark"`
keeps PyTorch's default Linear initialisation, as the benchmark's code does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import MethodConfig, Wrapper, block_width, blocks, register_method
from .lora import SLICES

INITS = ("zero", "benchmark")


@dataclass
class PATTConfig(MethodConfig):
    patt_dim: int | None = None  # None: 128 on Video Swin, 32 on VideoMAE (the V-PETL settings)
    patt_scale: float = 0.8
    patt_targets: tuple[str, ...] = ("k", "v")
    patt_init: str = "zero"

    def __post_init__(self) -> None:
        self.patt_targets = tuple(self.patt_targets)
        if not self.patt_targets or any(t not in SLICES for t in self.patt_targets):
            raise ValueError(f"PATT targets must be names among q, k, v; got {self.patt_targets}")
        if self.patt_init not in INITS:
            raise ValueError(f"patt_init must be one of {INITS}; got {self.patt_init!r}")

    def for_backbone(self, backbone: str) -> "PATTConfig":
        if self.patt_dim is None:
            self.patt_dim = 128 if backbone.startswith("videoswin") else 32
        return self


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
