"""AdaptFormer: a bottleneck beside every block's MLP.

out = x + mlp(norm2(x)) + scale * up(relu(down(a))), where the adapter input `a` is either the
residual stream x before norm2 (`adapter_input="residual"`, AdaptFormer's video code
`models/vit_video.py`, which produced the V-PETL ViT-B rows) or the MLP's input norm2(x)
(`"norm2"`, V-PETL Bench's `video_swin_transformer_AdaptFormer.py`). The up-projection is
zero-initialised, so the network is unchanged at step 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .base import MethodConfig, Wrapper, block_width, blocks, register_method

ADAPTER_INPUTS = ("residual", "norm2")


@dataclass
class AdaptFormerConfig(MethodConfig):
    adapter_dim: int = field(default=64, metadata={"help": "bottleneck width m of each adapter"})
    adapter_scale: float = field(default=0.1, metadata={
        "help": "fixed scale of the adapter output (AdaptFormer default 0.1; AIM's MLP adapter s: 0.5 K400, 1.0 SSv2)"})
    adapter_input: str | None = field(default=None, metadata={
        "help": "what the adapter reads: residual (the stream before norm2, AdaptFormer's video code; "
                "VideoMAE's default) or norm2 (the MLP's input, V-PETL's Swin code; Swin's default, and "
                "the choice where a backbone names none)"})

    def __post_init__(self) -> None:
        getattr(super(), "__post_init__", lambda: None)()  # BAPAT: PATT's checks too
        if self.adapter_input is not None and self.adapter_input not in ADAPTER_INPUTS:
            raise ValueError(f"adapter_input must be one of {', '.join(ADAPTER_INPUTS)}; got {self.adapter_input!r}")


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
    """Wraps the MLP: mlp(h) + scale * adapter(a), a = h, or the stream the `StreamTap` on norm2 saw."""

    def __init__(self, mlp: nn.Module, dim: int, hidden: int, scale: float) -> None:
        super().__init__(mlp)
        self.adapter = Bottleneck(dim, hidden)
        self.scale = scale
        self.tapped: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source, self.tapped = (x if self.tapped is None else self.tapped), None
        return self.base_layer(x) + self.scale * self.adapter(source)


class StreamTap(Wrapper):
    """Wraps norm2 unchanged and hands its input (the residual stream) to the block's adapter."""

    def __init__(self, norm: nn.Module, adapter: ParallelAdapter) -> None:
        super().__init__(norm)
        self.__dict__["adapter"] = adapter  # a reference, not a submodule (no duplicate parameters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.adapter.tapped = x
        return self.base_layer(x)


@register_method("adaptformer", AdaptFormerConfig, "bottleneck adapter parallel to every MLP")
def attach(model: nn.Module, cfg: AdaptFormerConfig) -> None:
    for block in list(blocks(model)):
        block.mlp = ParallelAdapter(block.mlp, block_width(block), cfg.adapter_dim, cfg.adapter_scale)
        if (cfg.adapter_input or "norm2") == "residual":
            block.norm2 = StreamTap(block.norm2, block.mlp)
