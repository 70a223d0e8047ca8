"""VideoMAE ViT (Tong et al. 2022): tubelet Conv3d, fixed sin-cos positions, SDPA attention.

Parameter names follow the official VideoMAE release, so its fine-tuning checkpoints load
as they are; the other formats (pre-training, mmaction2, transformers) are renamed by the filters
at the end of this file."""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from vidpeft.backbones.base import BackboneInfo, register_backbone
from vidpeft.backbones.formats import COMPUTED, Format, StateDict, fuse_qkv, has, rename
from vidpeft.backbones.layers import (
    FusedQKVAttention, TokenLayout, TransformerBlock, VideoClassifier, check_divisible, init_linear, prefix_kv, qkv_with_qv_bias,
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


@lru_cache(maxsize=16)
def device_sincos_table(num_tokens: int, dim: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """sincos_table on `device` in `dtype`, made once per size. A cache of functools (which torch.compile
    traces through) and not a dict on the model, whose contents a compiled forward would guard on: the
    first call's graph, compiled before the table was cached, would be compiled again after."""
    return sincos_table(num_tokens, dim).to(device, dtype)


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, tubelet: int, patch: int) -> None:
        super().__init__()
        self.patch_size = (tubelet, patch, patch)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, C, T', H', W')


class Attention(FusedQKVAttention):
    """Fused qkv without bias, VideoMAE's separate q and v biases added after it (wrapping `qkv` is safe)."""

    def __init__(self, dim: int, num_heads: int, qv_bias: bool = True) -> None:
        super().__init__(dim, num_heads, qkv_bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None

    def fused_qkv(self, x: torch.Tensor) -> torch.Tensor:
        return qkv_with_qv_bias(self.qkv, self.q_bias, self.v_bias, x)

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
        head_norm: bool = False,
        head_init_std: float = 0.02,
        head_init_scale: float = 1.0,
        train_fc_norm: bool = False,
    ) -> None:
        """`head_*`: see VideoClassifier.configure_head; `train_fc_norm`: fc_norm trains with the
        head whatever the method (AdaptFormer's main_video.py)."""
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
        self.apply(_init_weights)
        self.configure_head(head_norm, head_init_std, head_init_scale)
        self.trained_with_head = ("fc_norm",) if train_fc_norm else ()

    def position_table(self, num_tokens: int, like: torch.Tensor) -> torch.Tensor:
        return device_sincos_table(num_tokens, self.embed_dim, like.device, like.dtype)

    def final_norm(self) -> nn.Module:
        return self.fc_norm

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.patch_embed.patch_size, "VideoMAE")
        x = self.patch_embed(x)
        self.token_grid = self.token_layout.grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        # table first: the sum takes its (token, channel) layout, so the residual stream is contiguous
        # (x first kept the convolution's channel-major layout through every block: strided residual
        # adds and a copy before every LayerNorm)
        x = self.position_table(x.shape[1], x) + x
        x = self.prepend_extra_tokens(x)
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


# V-PETL's settings on VideoMAE: PATT width 32, AdaptFormer's input the residual stream (AdaptFormer's
# vit_video.py); clip length 16 (its pre-training); the micro test model takes 8 frames.
METHOD_DEFAULTS = {"patt_dim": 32, "adapter_input": "residual"}
for _size in SIZES:
    register_backbone(f"videomae-{_size}", factory(_size),
                      BackboneInfo(VideoMAE.family, 8 if _size == "micro" else 16, method_defaults=METHOD_DEFAULTS,
                                   micro=_size == "micro"))

# VideoMAE V2 (Wang et al. 2023): the same architecture and checkpoint names (OpenGVLab/VideoMAEv2
# models/modeling_finetune.py); ViT-g/14 (vit_giant_patch14_224) and the ViT-S/B distilled from it
# (vit_small/base_patch16_224: VideoMAE's S and B). Its release files and mmaction2's converted ones are
# read by the VideoMAE formats below.
V2_SIZES = {
    "s": SIZES["s"],
    "b": SIZES["b"],
    "g": dict(embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11, patch_size=14),
}
for _size in V2_SIZES:
    register_backbone(f"videomaev2-{_size}", size_factory(VideoMAE, V2_SIZES, _size, f"videomaev2_{_size}",
                                                          f"VideoMAE V2 ViT-{_size.upper()}, tubelet 2"),
                      BackboneInfo(VideoMAE.family, 16, method_defaults=METHOD_DEFAULTS))


# ---------------------------------------------------------------- checkpoint formats

def official_videomae(sd: StateDict) -> StateDict:
    """Official fine-tuned VideoMAE: already our names."""
    return rename(sd, [], drop=COMPUTED)


def official_videomae_pretrain(sd: StateDict) -> StateDict:
    """Official pre-training checkpoint: encoder under `encoder.`, decoder dropped."""
    encoder = {k: v for k, v in sd.items() if k.startswith("encoder.")}
    return rename(encoder, [(r"^encoder\.", "")], drop=COMPUTED)


def mmaction_videomae(sd: StateDict) -> StateDict:
    """mmaction2's VisionTransformer (vit_mae.py) with an mmaction cls_head."""
    return rename(sd, [
        (r"^backbone\.", ""),
        (r"^patch_embed\.projection\.", "patch_embed.proj."),
        (r"\.mlp\.layers\.0\.0\.", ".mlp.fc1."),
        (r"\.mlp\.layers\.1\.", ".mlp.fc2."),
        (r"^cls_head\.fc_cls\.", "head."),
    ], drop=COMPUTED)


def hf_videomae(sd: StateDict) -> StateDict:
    """transformers' VideoMAE port (VideoMAEModel / ForVideoClassification / ForPreTraining)."""
    sd = rename(sd, [(r"^videomae\.", "")],
                drop=COMPUTED + (r"^decoder\.", r"^encoder_to_decoder\.", r"^mask_token$"))
    out = rename(sd, [
        (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
        (r"^encoder\.layer\.(\d+)\.", r"blocks.\1."),
        (r"\.layernorm_before\.", ".norm1."),
        (r"\.layernorm_after\.", ".norm2."),
        (r"\.attention\.output\.dense\.", ".attn.proj."),
        (r"\.intermediate\.dense\.", ".mlp.fc1."),
        (r"\.output\.dense\.", ".mlp.fc2."),
        # q/v biases: `query.bias` / `value.bias` (transformers >= 4.4x) or `q_bias` / `v_bias` (older)
        (r"\.attention\.attention\.(query\.bias|q_bias)$", ".attn.q_bias"),
        (r"\.attention\.attention\.(value\.bias|v_bias)$", ".attn.v_bias"),
        (r"^layernorm\.", "norm."),
        (r"^classifier\.", "head."),
    ])
    for prefix in sorted({k.rsplit(".attention.attention.", 1)[0] for k in out if ".attention.attention." in k}):
        fuse_qkv(out, tuple(f"{prefix}.attention.attention.{n}" for n in ("query", "key", "value")), f"{prefix}.attn.qkv")
    return out


FORMATS = (  # most specific first
    Format("Hugging Face transformers VideoMAE", VideoMAE.family,
           has(r"^(videomae\.)?encoder\.layer\.\d+\.attention\.attention\.query\.weight$"), hf_videomae),
    Format("official VideoMAE pre-training", VideoMAE.family, has(r"^encoder\.blocks\.\d+\.attn\.qkv\.weight$"),
           official_videomae_pretrain),
    Format("mmaction2 VideoMAE", VideoMAE.family,
           has(r"^backbone\.blocks\.\d+\.attn\.qkv\.weight$", r"^backbone\.blocks\.\d+\.mlp\.layers\."),
           mmaction_videomae),
    Format("VideoMAE fine-tuning (official release or vidpeft names)", VideoMAE.family,
           has(r"^blocks\.\d+\.attn\.qkv\.weight$"), official_videomae),
)
