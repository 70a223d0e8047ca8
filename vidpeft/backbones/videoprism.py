"""VideoPrism video encoder (Zhao et al. 2024): ViViT's factorised encoder, a spatial transformer over
the patches of each frame, then a temporal transformer over the frames of each patch position.

Computed as transformers' `VideoPrismVisionModel` (and google-deepmind/videoprism's FactorizedEncoder):
Conv3d (1, 18, 18) patches plus a learned spatial position table -> spatial blocks with the frames
folded into the batch (B·T, H·W, C) -> `spatial_norm` -> plus a learned temporal table -> temporal
blocks with the patch positions folded into the batch (B·H·W, T, C) -> `norm`; no class token. The
clip feature is the mean of the normalised tokens, then a linear head (VideoPrism's own evaluation reads
the tokens with an attention-pooling head, which is not part of the backbone; `--method probe` is one).

Attention logits are soft-capped, cap·tanh(logits / cap) with cap 50, before the softmax, as the release
computes them. SDPA has no logit transform (transformers disables SDPA for this model for that reason),
so attention is written out: one batched matmul, tanh, softmax, matmul over all frames (or positions)
at once; the sequences are short (256 patches, 16 frames). Release LayerNorms scale by (1 + weight);
the checkpoint filters add the 1, so the blocks are vidpeft's plain pre-norm `TransformerBlock`s.
Position tables are resized for other frame sizes and clip lengths as transformers'
`interpolate_pos_encoding=True` does (bilinear with antialiasing)."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from vidpeft.backbones.base import BackboneInfo, register_backbone
from vidpeft.backbones.formats import Format, StateDict, fuse_qkv, has, rename, same
from vidpeft.backbones.layers import (
    FusedQKVAttention, TokenLayout, TransformerBlock, VideoClassifier, check_divisible, init_linear, prefix_kv,
    run_blocks, size_factory, stochastic_depth_rates,
)
from vidpeft.backbones.videomae import PatchEmbed


class PositionsInBatch(TokenLayout):
    """The temporal stage's stream: one sequence of the T frames per patch position, (B·H·W, P + T, C)
    with the H·W positions of a clip in raster order and P extra tokens (prompts) first."""

    def to_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.grid is None:
            raise RuntimeError("token_layout.to_grid called before the backbone's forward set the grid")
        t, h, w = self.grid
        extra = x.shape[1] - t
        if extra < 0:
            raise ValueError(f"a temporal block's {x.shape[1]} tokens cannot hold the {t} frames of the grid")
        grid = x[:, extra:].reshape(-1, h, w, t, x.shape[-1])
        return grid.permute(0, 4, 3, 1, 2), x[:, :extra]

    def from_grid(self, grid: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        b, c, t, h, w = grid.shape
        x = grid.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
        return torch.cat((extra, x), dim=1) if extra is not None and extra.shape[1] else x


class CappedAttention(FusedQKVAttention):
    """Fused-qkv attention with soft-capped logits: softmax(cap·tanh(q kᵀ/√d / cap)) v."""

    def __init__(self, dim: int, num_heads: int, logit_cap: float) -> None:
        super().__init__(dim, num_heads)
        self.logit_cap = logit_cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        q, k, v = self.project(x)
        k, v, _ = prefix_kv(self.kv_prefix, n, k, v)
        logits = q @ k.transpose(-2, -1) * self.head_dim**-0.5
        weights = (torch.tanh(logits / self.logit_cap) * self.logit_cap).softmax(-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, length, c))


class VideoPrism(VideoClassifier):
    """VideoPrism's factorised encoder with mean pooling of its normalised tokens -> head."""

    family = "videoprism"

    def __init__(
        self,
        num_classes: int = 400,
        embed_dim: int = 768,
        spatial_depth: int = 12,
        temporal_depth: int = 4,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_size: int = 18,
        img_size: int = 288,
        num_frames: int = 16,
        in_chans: int = 3,
        logit_cap: float = 50.0,
        drop_path_rate: float = 0.0,
        head_drop: float = 0.0,
        norm_eps: float = 1e-6,
        head_norm: bool = False,
        head_init_std: float = 0.02,
        head_init_scale: float = 1.0,
    ) -> None:
        """`img_size`, `num_frames`: the grid the position tables are stored for; `head_*`: see
        VideoClassifier.configure_head."""
        super().__init__()
        self.num_features = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(in_chans, embed_dim, 1, patch_size)
        self.table_side = img_size // patch_size
        self.spatial_pos_embed = nn.Parameter(torch.zeros(1, self.table_side**2, embed_dim))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        rates = stochastic_depth_rates(drop_path_rate, spatial_depth + temporal_depth)

        def stage(rates: list[float]) -> nn.ModuleList:
            return nn.ModuleList(
                TransformerBlock(embed_dim, CappedAttention(embed_dim, num_heads, logit_cap), mlp_ratio, dp, norm_eps)
                for dp in rates)

        self.spatial_blocks = stage(rates[:spatial_depth])
        self.spatial_norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.temporal_blocks = stage(rates[spatial_depth:])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        # spatial blocks: one sequence per frame (prompts first); temporal: one per patch position
        self.token_layout = TokenLayout(frames_in_batch=True)
        self.temporal_layout = PositionsInBatch()
        for blocks, layout in ((self.spatial_blocks, self.token_layout), (self.temporal_blocks, self.temporal_layout)):
            for blk in blocks:
                blk.token_layout = layout
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(embed_dim, num_classes)
        self.token_grid: tuple[int, int, int] | None = None
        # extra-token slot (prompts): tokens put first in every frame's sequence of the spatial stage,
        # dropped before the temporal stage; num_prefix_tokens counts them in the last forward
        self.extra_tokens: nn.Module | None = None
        self.num_prefix_tokens = 0
        self.grad_checkpointing = False
        self.apply(init_linear)
        for table in (self.spatial_pos_embed, self.temporal_pos_embed):
            nn.init.trunc_normal_(table, std=0.02)
        self.configure_head(head_norm, head_init_std, head_init_scale)

    @property
    def blocks(self) -> nn.ModuleList:
        """Every block in the order they run: the spatial ones, then the temporal ones."""
        return nn.ModuleList([*self.spatial_blocks, *self.temporal_blocks])

    def final_norm(self) -> nn.Module:
        return self.norm

    def no_weight_decay(self) -> set[str]:
        return {"spatial_pos_embed", "temporal_pos_embed"}

    def spatial_table(self, h: int, w: int) -> torch.Tensor:
        """The spatial position table (1, H·W, C) of an H x W patch grid."""
        if (h, w) == (self.table_side, self.table_side):
            return self.spatial_pos_embed
        table = self.spatial_pos_embed.unflatten(1, (self.table_side, self.table_side)).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(h, w), mode="bilinear", antialias=True)
        return table.permute(0, 2, 3, 1).flatten(1, 2)

    def temporal_table(self, t: int) -> torch.Tensor:
        """The temporal position table (1, T, C) of T frames."""
        table = self.temporal_pos_embed
        if t == table.shape[1]:
            return table
        return F.interpolate(table[:, None], size=(t, table.shape[2]), mode="bilinear", antialias=True)[:, 0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.patch_embed.patch_size, "VideoPrism")
        x = self.patch_embed(x)
        b, c, t, h, w = x.shape
        self.token_grid = self.token_layout.grid = self.temporal_layout.grid = (t, h, w)
        # token-major streams for both stages (tests/test_step_speed.py): a copy, except for a clip of one
        # where the reshapes below are views with the channel-major strides of the convolution
        x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c).contiguous() + self.spatial_table(h, w).to(x.dtype)
        x = self.prepend_extra_tokens(x)
        x = run_blocks(self.spatial_blocks, x, self.grad_checkpointing)
        x = self.spatial_norm(x[:, self.num_prefix_tokens:])
        x = x.view(b, t, h * w, c).transpose(1, 2).reshape(b * h * w, t, c).contiguous()
        x = x + self.temporal_table(t).to(x.dtype)
        x = self.norm(run_blocks(self.temporal_blocks, x, self.grad_checkpointing))
        return x.view(b, h * w * t, c).mean(1)


# google-deepmind/videoprism models.py CONFIGS videoprism_v1_base / _large (patch 18, 4 temporal layers)
SIZES = {
    "micro": dict(embed_dim=64, spatial_depth=2, temporal_depth=2, num_heads=2, patch_size=16, img_size=64,
                  num_frames=8),
    "b": dict(embed_dim=768, spatial_depth=12, temporal_depth=4, num_heads=12, num_frames=16),
    "l": dict(embed_dim=1024, spatial_depth=24, temporal_depth=4, num_heads=16, num_frames=8),
}


def factory(size: str):
    doc = f"VideoPrism-{size.upper()} factorised encoder (spatial then temporal transformer)"
    return size_factory(VideoPrism, SIZES, size, f"videoprism_{size}", doc)


# inputs in [0, 1] (the release's README; transformers' processor: rescale, do_normalize False); the
# clip length and frame side of the released weights (f16r288 and f8r288); ViT adapter defaults as on VideoMAE
METHOD_DEFAULTS = {"patt_dim": 32, "adapter_input": "residual"}
for _size, _cfg in SIZES.items():
    register_backbone(f"videoprism-{_size}", factory(_size),
                      BackboneInfo(VideoPrism.family, _cfg["num_frames"], mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                   method_defaults=METHOD_DEFAULTS, input_size=_cfg.get("img_size", 288),
                                   micro=_size == "micro"))


# ---------------------------------------------------------------- checkpoint formats

HF_ENCODER = r"^(?:video_model\.)?(?:vision_model\.)?"  # VideoPrismVisionModel, inside the video / clip models
HF_PARTS = r"(spatial_embeddings|temporal_embeddings|spatial_layers|temporal_layers|layernorm1|layernorm2)\."


def hf_videoprism(sd: StateDict) -> StateDict:
    """transformers' VideoPrismVisionModel, or its encoder inside VideoPrismVideoModel /
    ForVideoClassification / ClipModel (their auxiliary layers, attention-pooling heads, classifier and
    text model are dropped); LayerNorm weights w -> 1 + w, separate q/k/v fused."""
    encoder = {k: v for k, v in sd.items() if re.search(HF_ENCODER + HF_PARTS, k)}
    out = rename(encoder, [
        (HF_ENCODER, ""),
        (r"^spatial_embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
        (r"^spatial_embeddings\.position_embeddings$", "spatial_pos_embed"),
        (r"^temporal_embeddings\.position_embeddings$", "temporal_pos_embed"),
        (r"^(spatial|temporal)_layers\.", r"\1_blocks."),
        (r"\.layernorm_before\.", ".norm1."),
        (r"\.layernorm_after\.", ".norm2."),
        (r"\.attention\.o_proj\.", ".attn.proj."),
        (r"^layernorm1\.", "spatial_norm."),
        (r"^layernorm2\.", "norm."),
    ])
    for key in [k for k in out if re.search(r"norm\d?\.weight$", k)]:
        out[key] = out[key] + 1.0
    for prefix in sorted({k.split(".attention.")[0] for k in out if ".attention." in k}):
        fuse_qkv(out, tuple(f"{prefix}.attention.{n}_proj" for n in "qkv"), f"{prefix}.attn.qkv")
    return out


FORMATS = (  # most specific first
    Format("Hugging Face transformers VideoPrism", VideoPrism.family,
           has(HF_ENCODER + r"spatial_layers\.\d+\.attention\.q_proj\.weight$"), hf_videoprism),
    Format("VideoPrism (vidpeft names)", VideoPrism.family, has(r"^spatial_blocks\.\d+\.attn\.qkv\.weight$"), same),
)
