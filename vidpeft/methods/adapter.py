"""Bottleneck adapters (Houlsby et al. 2019), in series with the layer they follow.

y -> y + up(gelu(down(y))) on the output of the attention's output projection and of the
MLP (Houlsby; `adapter_positions=attn,mlp`) or of the MLP only (Pfeiffer; `mlp`), before the
block's residual addition, as google-research/adapter-bert places them. As there, GELU is
the tanh approximation, the down-projection is drawn from a normal truncated at 2 std with
std 1e-3 and the biases start at zero; unlike there (where the up-projection gets the same
small init, a near-identity), the up-projection is zero, so the network is unchanged at step 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .adaptformer import Bottleneck
from .base import MethodConfig, Wrapper, block_width, blocks, register_method

POSITIONS = ("attn", "mlp")  # after attn.proj, after mlp
INIT_STD = 1e-3  # adapter-bert's init_scale


@dataclass
class AdapterConfig(MethodConfig):
    adapter_dim: int = field(default=64, metadata={"help": "bottleneck width m of each adapter"})
    adapter_positions: tuple[str, ...] = field(default=POSITIONS, metadata={
        "help": "Adapter: where adapters follow, among attn (the attention output projection) and mlp; "
                "attn,mlp = Houlsby, mlp = Pfeiffer"})

    def __post_init__(self) -> None:
        self.adapter_positions = tuple(self.adapter_positions)
        if not self.adapter_positions or any(p not in POSITIONS for p in self.adapter_positions):
            raise ValueError(f"adapter_positions must be names among {', '.join(POSITIONS)}; "
                             f"got {self.adapter_positions}")


class SerialAdapter(Wrapper):
    def __init__(self, layer: nn.Module, dim: int, hidden: int) -> None:
        super().__init__(layer)
        self.adapter = Bottleneck(dim, hidden)
        self.adapter.act = nn.GELU(approximate="tanh")
        nn.init.trunc_normal_(self.adapter.down.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        return y + self.adapter(y)


@register_method("adapter", AdapterConfig, "bottleneck adapters in series after attention and MLP (Houlsby) "
                 "or after the MLP (Pfeiffer)")
def attach(model: nn.Module, cfg: AdapterConfig) -> None:
    for block in list(blocks(model)):
        dim = block_width(block)
        if "attn" in cfg.adapter_positions:
            block.attn.proj = SerialAdapter(block.attn.proj, dim, cfg.adapter_dim)
        if "mlp" in cfg.adapter_positions:
            block.mlp = SerialAdapter(block.mlp, dim, cfg.adapter_dim)
