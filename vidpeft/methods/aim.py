"""AIM: Adapting Image Models (Yang et al. 2023; taoyang1122/adapt-image-models, vit_clip.py).

Per block of a frame-wise image backbone, with the block's frozen norm1 and attention:
    x = x + drop_path(T-Adapter(attn_t(norm1(x))))    temporal: each token position over the T frames
    x = x + S-Adapter(attn(norm1(x)))                 spatial: S-Adapter = a + up(gelu(down(a)))
    x = x + mlp(norm2(x)) + drop_path(s * MLP-Adapter(norm2(x)))
Bottlenecks d * adapter_ratio (d/4), GELU; every last projection zero-initialised (the network
is unchanged at step 0); the backbone's temporal embedding is trained. The temporal branch
fills the block's `pre_attn` slot, the S-Adapter wraps `attn`, the MLP adapter wraps `mlp`.
On layer-scaled blocks (BEiT), the layer scale multiplies the wrapped attn / mlp outputs, adapters included.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..backbones.layers import DropPath, stochastic_depth_rates
from .base import MethodConfig, Wrapper, block_width, blocks, fill_slot, register_method


@dataclass
class AIMConfig(MethodConfig):
    adapter_scale: float = field(default=0.5, metadata={
        "help": "fixed scale of the adapter output (AdaptFormer default 0.1; AIM's MLP adapter s: 0.5 K400, 1.0 SSv2)"})
    adapter_ratio: float = field(default=0.25, metadata={
        "help": "AIM: adapter bottleneck width as a fraction of the block width (0.25: d/4)"})
    temporal_adapter_in: bool = field(default=False, metadata={
        "help": "AIM: also an adapter before the temporal attention (AIM's SSv2 setting, num_tadapter=2)"})
    adapter_drop_path: float = field(default=0.2, metadata={
        "help": "AIM: stochastic depth of the temporal and MLP adapter branches, rising linearly to this "
                "over the blocks (AIM's drop_path_rate 0.2; the frozen branches are never dropped)"})


class Adapter(nn.Module):
    """AIM's Adapter: fc2(gelu(fc1(x))), plus x with `skip`; fc1 as AIM initialises Linear layers, fc2 zero."""

    def __init__(self, dim: int, ratio: float, skip: bool) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.skip = skip
        nn.init.trunc_normal_(self.fc1.weight, std=0.02)
        for p in (self.fc1.bias, self.fc2.weight, self.fc2.bias):
            nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(self.act(self.fc1(x)))
        return x + out if self.skip else out


class TemporalAttention(nn.Module):
    """The block's frozen norm1 and attention applied along time, then the T-Adapter, as a residual branch."""

    def __init__(self, block: nn.Module, cfg: AIMConfig, drop_path: float) -> None:
        super().__init__()
        dim = block_width(block)
        self.adapter_in = Adapter(dim, cfg.adapter_ratio, skip=True) if cfg.temporal_adapter_in else None
        self.adapter = Adapter(dim, cfg.adapter_ratio, skip=False)
        self.drop_path = DropPath(drop_path)
        # the block's own modules, not submodules of this one (their weights stay the block's)
        self.frozen = (block.norm1, block.attn, block.token_layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm, attn, layout = self.frozen
        frames = layout.grid[0]
        n, length, dim = x.shape  # (B·T, L, C): one sequence per frame
        along_time = x.view(-1, frames, length, dim).transpose(1, 2).reshape(-1, frames, dim)
        h = norm(along_time)
        if self.adapter_in is not None:
            h = self.adapter_in(h)
        h = self.adapter(attn.plain_attention(h))
        h = h.view(-1, length, frames, dim).transpose(1, 2).reshape(n, length, dim)
        return x + self.drop_path(h)


class SpatialAdapter(Wrapper):
    def __init__(self, attn: nn.Module, dim: int, ratio: float) -> None:
        super().__init__(attn)
        self.adapter = Adapter(dim, ratio, skip=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base_layer(x))


class MLPAdapter(Wrapper):
    def __init__(self, mlp: nn.Module, dim: int, cfg: AIMConfig, drop_path: float) -> None:
        super().__init__(mlp)
        self.adapter = Adapter(dim, cfg.adapter_ratio, skip=False)
        self.scale = cfg.adapter_scale
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.drop_path(self.scale * self.adapter(x))


@register_method("aim", AIMConfig, "AIM: temporal attention with the frozen weights + T/S/MLP adapters (image backbones)")
def attach(model: nn.Module, cfg: AIMConfig) -> None:
    temporal = getattr(model, "temporal_embed", None)
    if not getattr(model, "frame_wise", False) or temporal is None:
        raise ValueError("aim adapts image models applied frame-wise (e.g. clip-b16, vit-b16-in21k, beitv2-b16, "
                         "with their temporal embedding); this backbone is not one")
    chosen = list(blocks(model))
    for block, rate in zip(chosen, stochastic_depth_rates(cfg.adapter_drop_path, len(chosen))):
        dim = block_width(block)
        fill_slot(block, "pre_attn", TemporalAttention(block, cfg, rate), "aim")
        block.attn = SpatialAdapter(block.attn, dim, cfg.adapter_ratio)
        block.mlp = MLPAdapter(block.mlp, dim, cfg, rate)
    temporal.requires_grad_(True)
