"""Partial-k (a baseline of VPT's and Mona's tables): train the last k blocks and the final norm.

On Video Swin the last k blocks are counted across stages; a patch merging between them
stays frozen."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from .base import MethodConfig, blocks, register_method


@dataclass
class PartialConfig(MethodConfig):
    partial_blocks: int = field(default=1, metadata={"help": "Partial-k: number k of last blocks trained"})

    def __post_init__(self) -> None:
        if self.partial_blocks < 1:
            raise ValueError(f"partial_blocks must be >= 1, got {self.partial_blocks}")


@register_method("partial", PartialConfig, "train the last k blocks and the final norm (Partial-k)")
def attach(model: nn.Module, cfg: PartialConfig) -> None:
    block_list = list(blocks(model))
    if cfg.partial_blocks > len(block_list):
        raise ValueError(f"partial_blocks={cfg.partial_blocks}, but this backbone has {len(block_list)} blocks")
    for block in block_list[-cfg.partial_blocks:]:
        block.requires_grad_(True)
    model.final_norm().requires_grad_(True)
