"""Attentive probe: V-JEPA 2's frozen-backbone classifier (facebookresearch/vjepa2,
src/models/attentive_pooler.py: AttentivePooler + AttentiveClassifier; evals/video_classification_frozen).

The backbone stays frozen. Its patch tokens after the last block, through the backbone's final norm
token by token (`final_norm()`: what V-JEPA's encoder outputs), go through `probe_depth - 1`
self-attention blocks, then a cross-attention block in which one learned query attends to every
token: q = query + CrossAttention(query, norm1(tokens)); q = q + MLP(norm2(q)) (no output
projection, as V-JEPA 2's CrossAttention). The query's output replaces the pooled feature before the
linear head (the backbone's `head`, kept). Class tokens and prompts are not attended to.

Init as V-JEPA 2: trunc-normal(std `probe_init_std`) Linear weights and query, zero biases, unit
LayerNorms; each self-attention block's `proj` and `mlp.fc2` divided by sqrt(2·i) (i = 1, 2, ...),
the cross-attention block's `mlp.fc2` by sqrt(2·max(1, depth - 1)) (the last i, as its code does).
Defaults are those of V-JEPA 2's evaluation code (one block, 16 heads); its published evaluations
use 4 blocks, which configs/probe.yaml sets with their optimisation.

Hook points: the last block's `post_mlp` residual slot records the stream (an identity: the
backbone's own output is unchanged), and the probe takes the head-input slot `head_drop` (the
backbone's dropout is applied to the probe's output instead of the pooled feature).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.layers import Mlp
from .base import MethodConfig, blocks, fill_slot, register_method


@dataclass
class ProbeConfig(MethodConfig):
    probe_depth: int = field(default=1, metadata={
        "help": "attentive probe: blocks, i.e. depth - 1 self-attention blocks over the tokens then the "
                "cross-attention block (V-JEPA 2's num_probe_blocks; its published evaluations use 4)"})
    probe_heads: int = field(default=16, metadata={"help": "attentive probe: attention heads (V-JEPA 2's num_heads)"})
    probe_mlp_ratio: float = field(default=4.0, metadata={"help": "attentive probe: MLP width / token width"})
    probe_init_std: float = field(default=0.02, metadata={
        "help": "attentive probe: std of the trunc-normal init of its query and Linear weights"})

    def __post_init__(self) -> None:
        if self.probe_depth < 1 or self.probe_heads < 1:
            raise ValueError(f"probe_depth and probe_heads must be >= 1; got {self.probe_depth}, {self.probe_heads}")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention of (B, n, C) queries over (B, N, C) keys and values."""
    b, n, c = q.shape
    q, k, v = (t.unflatten(-1, (heads, c // heads)).transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(attention(*self.qkv(x).chunk(3, dim=-1), self.heads))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return attention(self.q(q), *self.kv(x).chunk(2, dim=-1), self.heads)


class ProbeBlock(nn.Module):
    """V-JEPA's Block (pre-norm self-attention + MLP); `self_attn`, not `attn`: not a backbone block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.xattn = nn.LayerNorm(dim), CrossAttention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        q = q + self.xattn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))


class AttentivePooler(nn.Module):
    """V-JEPA 2's AttentivePooler with one query: (B, N, C) tokens -> (B, C)."""

    def __init__(self, dim: int, cfg: ProbeConfig) -> None:
        super().__init__()
        heads, ratio = cfg.probe_heads, cfg.probe_mlp_ratio
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(ProbeBlock(dim, heads, ratio) for _ in range(cfg.probe_depth - 1))
        self.cross_attention_block = CrossAttentionBlock(dim, heads, ratio)
        self.init_weights(cfg.probe_init_std)

    @torch.no_grad()
    def init_weights(self, std: float) -> None:
        nn.init.trunc_normal_(self.query_tokens, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for i, block in enumerate(self.blocks, start=1):
            block.self_attn.proj.weight.div_(math.sqrt(2.0 * i))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * i))
        self.cross_attention_block.mlp.fc2.weight.div_(math.sqrt(2.0 * max(1, len(self.blocks))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.cross_attention_block(self.query_tokens.expand(len(x), -1, -1), x).squeeze(1)


class TokenTap(nn.Module):
    """An identity in the last block's post_mlp slot that keeps the block's output for the probe."""

    def __init__(self, layout) -> None:
        super().__init__()
        self.layout = layout  # the block's token_layout (a plain object)
        self.stream: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.stream = x
        return x

    def take(self) -> torch.Tensor:
        """The patch tokens (B, T·H·W, C) of the last forward, released for the next one."""
        if self.stream is None:
            raise RuntimeError("the attentive probe ran without the backbone's forward before it")
        grid, _ = self.layout.to_grid(self.stream)  # (B, C, T, H, W): class tokens, prompts left out
        self.stream = None
        return grid.flatten(2).transpose(1, 2)


class AttentiveProbe(nn.Module):
    """Takes the head-input slot: the pooled feature is replaced by the pooler's output on the tapped tokens."""

    def __init__(self, tap: TokenTap, final_norm: nn.Module, head_drop: nn.Module, dim: int, cfg: ProbeConfig) -> None:
        super().__init__()
        self.pooler = AttentivePooler(dim, cfg)
        self.drop = head_drop
        object.__setattr__(self, "tap", tap)  # plain references: registered where they belong
        object.__setattr__(self, "final_norm", final_norm)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pooler(self.final_norm(self.tap.take())))


@register_method("probe", ProbeConfig, "attentive probe (V-JEPA 2): learned query cross-attending to the "
                 "frozen patch tokens, then the head")
def attach(model: nn.Module, cfg: ProbeConfig) -> None:
    dim = model.num_features
    if dim % cfg.probe_heads:
        raise ValueError(f"probe: probe_heads {cfg.probe_heads} does not divide the token width {dim} of this "
                         "backbone; pass --probe-heads with a divisor of it")
    last = list(blocks(model))[-1]
    tap = TokenTap(last.token_layout)
    fill_slot(last, "post_mlp", tap, "probe")
    model.head_drop = AttentiveProbe(tap, model.final_norm(), model.head_drop, dim, cfg)
