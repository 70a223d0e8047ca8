"""Prefix-tuning: L learned key/value tokens appended to K and V in every block.

During training the prefixes come from a small MLP per block (Embedding(L, d) ->
Linear(d, m) -> Tanh -> Linear(m, 2d)), which makes optimisation stable (Li & Liang,
2021); `fold(model)` replaces each MLP by the two tensors it produces, for inference.
Defaults L = 16, m = 128: 4.84M parameters on Swin-B, 3.71M on ViT-B (the benchmark's
6.37M cannot be reproduced from its code, which crashes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .base import MethodConfig, blocks, register_method


@dataclass
class PrefixConfig(MethodConfig):
    prefix_length: int = field(default=16, metadata={"help": "prefix-tuning: number L of key/value tokens"})
    prefix_hidden: int = field(default=128, metadata={"help": "prefix-tuning: hidden width m of the prefix MLP"})


class PrefixMLP(nn.Module):
    def __init__(self, num_heads: int, head_dim: int, cfg: PrefixConfig) -> None:
        super().__init__()
        dim = num_heads * head_dim
        self.num_heads, self.head_dim = num_heads, head_dim
        self.embedding = nn.Parameter(torch.randn(cfg.prefix_length, dim) * 0.02)
        self.mlp = nn.Sequential(nn.Linear(dim, cfg.prefix_hidden), nn.Tanh(), nn.Linear(cfg.prefix_hidden, 2 * dim))

    def kv(self) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.mlp(self.embedding).chunk(2, dim=-1)
        shape = (1, -1, self.num_heads, self.head_dim)
        return k.reshape(shape).transpose(1, 2), v.reshape(shape).transpose(1, 2)

    def forward(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.kv()


class FixedPrefix(nn.Module):
    def __init__(self, k: torch.Tensor, v: torch.Tensor) -> None:
        super().__init__()
        self.k = nn.Parameter(k.detach().clone(), requires_grad=False)
        self.v = nn.Parameter(v.detach().clone(), requires_grad=False)

    def forward(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.k, self.v


@register_method("prefix", PrefixConfig, "learned key/value prefixes in every attention")
def attach(model: nn.Module, cfg: PrefixConfig) -> None:
    for block in blocks(model):
        block.attn.kv_prefix = PrefixMLP(block.attn.num_heads, block.attn.head_dim, cfg)


def fold(model: nn.Module) -> nn.Module:
    """Replace every prefix MLP by the fixed key/value tensors it produces."""
    for block in blocks(model):
        if isinstance(block.attn.kv_prefix, PrefixMLP):
            with torch.no_grad():
                block.attn.kv_prefix = FixedPrefix(*block.attn.kv_prefix.kv())
    return model
