"""VPT, visual prompt tuning (Jia et al. 2022): learned prompt tokens, shallow or deep.

- shallow: L prompts put first in the token sequence once, before the first block, and
  carried through every block (`model.extra_tokens`).
- deep (default): a fresh set of L prompts before every block (each stage's at its width).
On VideoMAE and the image models the prompts take no part in the mean pooling, and a deep
block's prompts are fed to its attention as a key/value prefix (`attn.kv_prefix`), projected
through the block's own frozen norm1 and qkv (`attn.project_kv`, VideoMAE's q/v biases
included): the same result as concatenating, attending and dropping their outputs, without
computing the prompts' queries and MLP.
On Video Swin, whose blocks carry extra tokens beside the grid (`block.extra_tokens`), the
prompts follow the VPT reference's Swin variant (PromptedSwinTransformer): in every block
they join every window (zero relative bias, never masked) and are updated by the window
average of their attention outputs and by the MLP; patch merging passes each prompt on as
four copies through its norm and reduction; deep prompts replace the carried ones before
every block; the final mean pools the last prompts with the patch tokens.
Init as the reference: uniform(-v, v), v = sqrt(6 / (fan_in of a patch + width)), a
Xavier-uniform bound from the patch embedding's fan-in. Default L = 10: ViT-B deep
12 x 10 x 768 = 92,160 parameters, shallow 7,680; Swin-B deep 10 x 12,032 (the sum of its
24 blocks' widths) = 120,320, shallow 1,280.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .base import MethodConfig, block_width, blocks, register_method

MODES = ("deep", "shallow")


@dataclass
class VPTConfig(MethodConfig):
    prompt_length: int = field(default=10, metadata={"help": "VPT: number L of prompt tokens (per block when deep)"})
    vpt_mode: str = field(default="deep", metadata={
        "help": "VPT: deep (fresh prompts before every block) or shallow (prompts inserted once)"})
    prompt_dropout: float = field(default=0.0, metadata={"help": "VPT: dropout on the prompt tokens"})

    def __post_init__(self) -> None:
        if self.vpt_mode not in MODES:
            raise ValueError(f"vpt_mode must be one of {', '.join(MODES)}; got {self.vpt_mode!r}")
        if self.prompt_length < 1:
            raise ValueError(f"prompt_length must be >= 1, got {self.prompt_length}")


class Prompts(nn.Module):
    """L learned tokens of width `dim`, with dropout; forward gives them as (1, L, dim)."""

    def __init__(self, length: int, dim: int, bound: float, dropout: float) -> None:
        super().__init__()
        self.prompts = nn.Parameter(torch.empty(1, length, dim).uniform_(-bound, bound))
        self.dropout = nn.Dropout(dropout)

    def forward(self, *_) -> torch.Tensor:
        return self.dropout(self.prompts)


class PrefixPrompts(Prompts):
    """A block's prompts as its attention's key/value prefix (the `kv_prefix(rows)` slot)."""

    def __init__(self, block: nn.Module, length: int, bound: float, dropout: float) -> None:
        super().__init__(length, block_width(block), bound, dropout)
        object.__setattr__(self, "block", block)  # a plain reference: not a submodule, not saved twice

    def forward(self, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.block.attn.project_kv(self.block.norm1(super().forward()))


def init_bound(model: nn.Module) -> float:
    proj = model.patch_embed.proj
    return math.sqrt(6.0 / (proj.weight[0].numel() + proj.out_channels))


@register_method("vpt", VPTConfig, "learned prompt tokens, deep (every block) or shallow (VPT)")
def attach(model: nn.Module, cfg: VPTConfig) -> None:
    bound = init_bound(model)
    if cfg.vpt_mode == "shallow":
        if not hasattr(model, "extra_tokens"):
            raise ValueError(f"vpt_mode=shallow needs a backbone with an extra-token slot (model.extra_tokens); "
                             f"{model.family} has none: use vpt_mode=deep")
        model.extra_tokens = Prompts(cfg.prompt_length, model.patch_embed.proj.out_channels, bound,
                                     cfg.prompt_dropout)
        return
    for block in blocks(model):
        if hasattr(block, "extra_tokens"):  # blocks that carry extra tokens take the reference's prompted path
            block.extra_tokens = Prompts(cfg.prompt_length, block_width(block), bound, cfg.prompt_dropout)
        else:
            block.attn.kv_prefix = PrefixPrompts(block, cfg.prompt_length, bound, cfg.prompt_dropout)
