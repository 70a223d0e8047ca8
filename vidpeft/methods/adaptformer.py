"""AdaptFormer: a bottleneck beside every block's MLP.

out = mlp(x) + scale * up(relu(down(x))), x being the MLP's input (after norm2). The
up-projection is zero-initialised, so the network is unchanged at step 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .base import MethodConfig, Wrapper, block_width, blocks, register_method


@dataclass
class AdaptFormerConfig(MethodConfig):
    adapter_dim: int = field(default=64, metadata={"help": "bottleneck width m of each adapter"})
    adapter_scale: float = field(default=0.1, metadata={
        "help": "fixed scale of the adapter output (AdaptFormer default 0.1; AIM's MLP adapter s: 0.5 K400, 1.0 SSv2)"})


class Bottleneck(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = nn.ReLU()
        self.up = nn.Linear(hidden, dim)
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class ParallelAdapter(Wrapper):
    def __init__(self, mlp: nn.Module, dim: int, hidden: int, scale: float) -> None:
        super().__init__(mlp)
        self.adapter = Bottleneck(dim, hidden)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.scale * self.adapter(x)


@register_method("adaptformer", AdaptFormerConfig, "bottleneck adapter parallel to every MLP")
def attach(model: nn.Module, cfg: AdaptFormerConfig) -> None:
    for block in list(blocks(model)):
        block.mlp = ParallelAdapter(block.mlp, block_width(block), cfg.adapter_dim, cfg.adapter_scale)
