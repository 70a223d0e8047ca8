"""ST-Adapter (Pan et al. 2022; linziyi96/st-adapter `models_adapter.py`).

x + up(dwconv3d(down(x))) on the patch tokens seen as their (T, H, W) grid, the depthwise
convolution (3, 1, 1) mixing each position with itself in the neighbouring frames. It sits
in the residual stream before attention (the paper; `st_positions=("mlp",)` is the released
K400 12x384 model, both the SSv2 24x384 one). Convolution weight and bias and both biases are
zero-initialised as in the reference, so the network is unchanged at step 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .base import GridResidual, MethodConfig, block_width, blocks, fill_slot, register_method
from .grid_conv import depthwise_conv

POSITIONS = {"attn": "pre_attn", "mlp": "post_attn"}  # "before the MLP": after attention's residual add


@dataclass
class STAdapterConfig(MethodConfig):
    st_dim: int = field(default=0, metadata={
        "help": "ST-Adapter bottleneck width m; 0 = half of each block's width (384 on ViT-B; "
                "64, 128, 256, 512 over Video Swin-B's four stages)"})
    st_positions: tuple[str, ...] = field(default=("attn",), metadata={
        "help": "ST-Adapter places: attn (before attention, the paper) and/or mlp (before the MLP)"})
    st_last_blocks: int = field(default=0, metadata={
        "help": "ST-Adapter in the last k blocks only (0 = every block)"})


class STAdapter(GridResidual):
    def __init__(self, layout, dim: int, width: int, kernel: int = 3) -> None:
        super().__init__(layout)
        self.fc1 = nn.Linear(dim, width)
        self.conv = nn.Conv3d(width, width, (kernel, 1, 1), padding=(kernel // 2, 0, 0), groups=width)
        self.fc2 = nn.Linear(width, dim)
        for p in (self.conv.weight, self.conv.bias, self.fc1.bias, self.fc2.bias):
            nn.init.zeros_(p)

    def branch(self, grid: torch.Tensor) -> torch.Tensor:
        return self.fc2(depthwise_conv(self.fc1(grid), self.conv.weight, self.conv.bias))  # = self.conv, channels-last


@register_method("st-adapter", STAdapterConfig, "depthwise temporal 3D convolution in a bottleneck before attention")
def attach(model: nn.Module, cfg: STAdapterConfig) -> None:
    unknown = sorted(set(cfg.st_positions) - set(POSITIONS))
    if unknown or not cfg.st_positions:
        raise ValueError(f"st_positions: {', '.join(unknown) or 'none given'}; choose among {', '.join(POSITIONS)}")
    if cfg.st_dim < 0 or cfg.st_last_blocks < 0:
        raise ValueError("st_dim and st_last_blocks must be >= 0 (0 = the default)")
    chosen = list(blocks(model))
    for block in chosen[-cfg.st_last_blocks:] if cfg.st_last_blocks else chosen:
        dim = block_width(block)
        for position in dict.fromkeys(cfg.st_positions):
            adapter = STAdapter(block.token_layout, dim, cfg.st_dim or dim // 2)
            fill_slot(block, POSITIONS[position], adapter, "st-adapter")
