"""VideoMAE ViT (Tong et al. 2022): tubelet Conv3d, fixed sin-cos positions, SDPA attention.

Parameter names follow the official VideoMAE release, so its fine-tuning checkpoints load
as they are; other formats are renamed in checkpoints.py."""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from vidpeft.backbones.layers import (
    TokenLayout, TransformerBlock, VideoClassifier, check_divisible, init_linear, prefix_kv, qkv_with_qv_bias,
    run_blocks, size_factory, stochastic_depth_rates,
)


def sincos_table(num_tokens: int, dim: int) -> torch.Tensor:
    """The fixed 1D sinusoid table of VideoMAE over flattened token indices, (num_tokens, dim)."""
    freq = torch.arange(dim, dtype=torch.float64)
    freq = torch.pow(10000.0, -(freq - freq % 2) / dim)
    angles = torch.arange(num_tokens, dtype=torch.float64)[:, None] * freq[None]
    table = torch.empty_like(angles)
    table[:, 0::2] = angles[:, 0::2].sin()
    table[:, 1::2] = angles[:, 1::2].cos()
    return table.float()


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, tubelet: int, patch: int) -> None:
        super().__init__()
        self.patch_size = (tubelet, patch, patch)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, C, T', H', W')


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None
        self.proj = nn.Linear(dim, dim)
        self.kv_prefix: nn.Module | None = None

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of tokens (n, L, C), each (n, heads, L, head_dim), q/v biases included."""
        b, n, _ = x.shape
        qkv = qkv_with_qv_bias(self.qkv, self.q_bias, self.v_bias, x)
        return qkv.view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def project_kv(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of extra tokens (n, L, C) through this attention's own qkv (prompt methods)."""
        return self.project(tokens)[1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.project(x)
        k, v, _ = prefix_kv(self.kv_prefix, b, k, v)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class VideoMAE(VideoClassifier):
    """ViT encoder with mean pooling -> fc_norm -> head, as fine-tuned in VideoMAE."""

    family = "videomae"

    def __init__(
        self,
        num_classes: int = 400,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        head_drop: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.num_features = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(in_chans, embed_dim, tubelet_size, patch_size)
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, Attention(embed_dim, num_heads), mlp_ratio, dp, norm_eps)
            for dp in stochastic_depth_rates(drop_path_rate, depth)
        )
        self.token_layout = TokenLayout()  # every block's: patch tokens only, no class token
        for blk in self.blocks:
            blk.token_layout = self.token_layout
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(embed_dim, num_classes)
        self.token_grid: tuple[int, int, int] | None = None
        # extra-token slot: None or a module called with the embedded patch tokens (B, N, C) that
        # returns tokens (B or 1, L, C) to put first in the sequence (prompts); they take no part
        # in the mean pooling. num_prefix_tokens counts them in the last forward (timm's name).
        self.extra_tokens: nn.Module | None = None
        self.num_prefix_tokens = 0
        self.grad_checkpointing = False
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self.apply(_init_weights)

    def position_table(self, num_tokens: int, like: torch.Tensor) -> torch.Tensor:
        key = (num_tokens, like.device, like.dtype)
        if key not in self._pos_cache:
            self._pos_cache[key] = sincos_table(num_tokens, self.embed_dim).to(like)
        return self._pos_cache[key]

    def final_norm(self) -> nn.Module:
        return self.fc_norm

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.patch_embed.patch_size, "VideoMAE")
        x = self.patch_embed(x)
        self.token_grid = self.token_layout.grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        x = x + self.position_table(x.shape[1], x)
        self.num_prefix_tokens = 0
        if self.extra_tokens is not None:
            extra = self.extra_tokens(x).to(x.dtype)
            x = torch.cat((extra.expand(x.shape[0], -1, -1), x), dim=1)
            self.num_prefix_tokens = extra.shape[1]
        x = run_blocks(self.blocks, x, self.grad_checkpointing)
        return self.fc_norm(x[:, self.num_prefix_tokens:].mean(1))


def _init_weights(m: nn.Module) -> None:
    init_linear(m)
    if isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv3d):
        # as a Linear over the flattened patch (the official init)
        nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
        nn.init.zeros_(m.bias)


SIZES = {
    "micro": dict(embed_dim=64, depth=2, num_heads=2),
    "s": dict(embed_dim=384, depth=12, num_heads=6),
    "b": dict(embed_dim=768, depth=12, num_heads=12),
    "l": dict(embed_dim=1024, depth=24, num_heads=16),
    "h": dict(embed_dim=1280, depth=32, num_heads=16),
}


def factory(size: str):
    doc = f"VideoMAE ViT-{size.upper()}/16, tubelet 2"
    return size_factory(VideoMAE, SIZES, size, f"videomae_{size}", doc)
