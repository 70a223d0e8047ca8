"""V-JEPA 2 encoder (Assran et al. 2025): tubelet Conv3d, 3-D rotary position embedding, SDPA attention.

Parameter names follow the official release (facebookresearch/vjepa2, `src/models/vision_transformer.py`
with `use_rope=True`), so its encoder weights load after the `module.backbone.` prefix is removed;
transformers' `VJEPA2Model` files are renamed by the filters at the end of this file. The clip feature
is the mean over patch tokens of the encoder's final norm, then a linear head (V-JEPA 2's own
evaluation reads the tokens with an attentive probe, which is not part of the backbone).

Rotary embedding as the release computes it: each head's first 3·d channels (d = 2·⌊⌊head_dim/3⌋/2⌋)
are rotated by the token's frame, row and column index (d channels each, frequencies 10000^(-2i/d)),
the rest are left as they are. The release's frequency table repeats the d/2 frequencies
(`repeat`, not `repeat_interleave`) while pairs of adjacent channels rotate together; the pretrained
weights depend on it, so it is kept. Positions are those of this forward's grid, so any frame count
and frame size divisible by the tubelet and the patch work (the release's `handle_nonsquare_inputs`)."""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from vidpeft.backbones.base import BackboneInfo, register_backbone
from vidpeft.backbones.formats import Format, StateDict, both, fuse_qkv, has, lacks, rename
from vidpeft.backbones.layers import (
    FusedQKVAttention, TokenLayout, TransformerBlock, VideoClassifier, check_divisible, init_linear, prefix_kv,
    run_blocks, size_factory, stochastic_depth_rates,
)
from vidpeft.backbones.videomae import PatchEmbed


@lru_cache(maxsize=32)
def rotary_tables(grid: tuple[int, int, int], head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (N, head_dim) of the release's 3-D rotation for the N = T·H·W tokens of `grid` in
    raster order; channels past the three rotated slices get cos 1, sin 0."""
    d = 2 * ((head_dim // 3) // 2)
    t, h, w = grid
    positions = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")).flatten(1)
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
    angles = torch.cat([(axis[:, None].double() * omega).repeat(1, 2) for axis in positions], dim=1)  # (N, 3d)
    cos = F.pad(angles.cos(), (0, head_dim - 3 * d), value=1.0)
    sin = F.pad(angles.sin(), (0, head_dim - 3 * d), value=0.0)
    return cos.float().to(device), sin.float().to(device)


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...) over the last dimension."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class RopeAttention(FusedQKVAttention):
    """Fused-qkv attention whose queries and keys of the patch tokens are rotated by their grid position
    (`project` gives them before the rotation; extra tokens, through `project_kv`, have no position)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__(dim, num_heads, qkv_bias)
        self.token_layout: TokenLayout | None = None  # set by the backbone: the grid of this forward

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """The rotation of the patch tokens (the last T·H·W of the sequence); extra tokens first are kept."""
        cos, sin = rotary_tables(tuple(self.token_layout.grid), self.head_dim, x.device)
        patches = x[:, :, x.shape[2] - cos.shape[0]:]
        rotated = patches * cos.to(x.dtype) + rotate_pairs(patches) * sin.to(x.dtype)
        return torch.cat((x[:, :, :x.shape[2] - cos.shape[0]], rotated), dim=2) if x.shape[2] > cos.shape[0] else rotated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.project(x)
        q, k = self.rotate(q), self.rotate(k)
        k, v, _ = prefix_kv(self.kv_prefix, b, k, v)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class VJEPA2(VideoClassifier):
    """V-JEPA 2 ViT encoder with mean pooling of its normalised patch tokens -> head."""

    family = "vjepa2"

    def __init__(
        self,
        num_classes: int = 400,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
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
    ) -> None:
        """`head_*`: see VideoClassifier.configure_head."""
        super().__init__()
        self.num_features = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(in_chans, embed_dim, tubelet_size, patch_size)
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, RopeAttention(embed_dim, num_heads), mlp_ratio, dp, norm_eps)
            for dp in stochastic_depth_rates(drop_path_rate, depth)
        )
        self.token_layout = TokenLayout()  # patch tokens only, no class token
        for blk in self.blocks:
            blk.token_layout = blk.attn.token_layout = self.token_layout
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(embed_dim, num_classes)
        self.token_grid: tuple[int, int, int] | None = None
        # extra-token slot (prompts), as on VideoMAE: tokens put first, not rotated, not pooled
        self.extra_tokens: nn.Module | None = None
        self.num_prefix_tokens = 0
        self.grad_checkpointing = False
        self.apply(init_linear)
        self.configure_head(head_norm, head_init_std, head_init_scale)

    def final_norm(self) -> nn.Module:
        return self.norm

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.patch_embed.patch_size, "V-JEPA 2")
        x = self.patch_embed(x)
        self.token_grid = self.token_layout.grid = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2).contiguous()  # a token-major stream (tests/test_step_speed.py)
        x = self.prepend_extra_tokens(x)
        x = self.norm(run_blocks(self.blocks, x, self.grad_checkpointing))
        return x[:, self.num_prefix_tokens:].mean(1)


# the release's vit_large / vit_huge / vit_giant_xformers with use_rope=True
SIZES = {
    "micro": dict(embed_dim=64, depth=2, num_heads=2),
    "l": dict(embed_dim=1024, depth=24, num_heads=16),
    "h": dict(embed_dim=1280, depth=32, num_heads=16),
    "g": dict(embed_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11),
}
# frame side of the released weights: 256 (ViT-L/H/g), 384 (ViT-g/384, the same architecture)
INPUT_SIZES = {"micro": 64, "l": 256, "h": 256, "g": 256, "g-384": 384}


def factory(size: str):
    doc = f"V-JEPA 2 ViT-{size.upper()}/16, tubelet 2, 3-D RoPE"
    return size_factory(VJEPA2, SIZES, size, f"vjepa2_{size.replace('-', '_')}", doc)


# 16-frame clips (V-JEPA 2's SSv2 and K400 probes); ViT adapter defaults as on VideoMAE
METHOD_DEFAULTS = {"patt_dim": 32, "adapter_input": "residual"}
for _name, _side in INPUT_SIZES.items():
    register_backbone(f"vjepa2-{_name}", factory(_name.split("-")[0]),
                      BackboneInfo(VJEPA2.family, 8 if _name == "micro" else 16, method_defaults=METHOD_DEFAULTS,
                                   input_size=_side, micro=_name == "micro"))


# ---------------------------------------------------------------- checkpoint formats

def official_vjepa2(sd: StateDict) -> StateDict:
    """The release's encoder (`encoder` / `target_encoder` entry of its .pt): `module.backbone.` prefixes."""
    return rename(sd, [(r"^module\.", ""), (r"^backbone\.", "")])


def hf_vjepa2(sd: StateDict) -> StateDict:
    """transformers' VJEPA2Model / VJEPA2ForVideoClassification: the encoder; predictor, pooler and
    classifier (an attentive probe's) are dropped."""
    out = rename(sd, [
        (r"^vjepa2\.", ""),
        (r"^encoder\.embeddings\.patch_embeddings\.proj\.", "patch_embed.proj."),
        (r"^encoder\.layer\.(\d+)\.attention\.proj\.", r"blocks.\1.attn.proj."),
        (r"^encoder\.layer\.(\d+)\.", r"blocks.\1."),
        (r"^encoder\.layernorm\.", "norm."),
    ], drop=(r"^(vjepa2\.)?predictor\.", r"^pooler\.", r"^classifier\."))
    for prefix in sorted({k.split(".attention.")[0] for k in out if ".attention." in k}):
        fuse_qkv(out, tuple(f"{prefix}.attention.{n}" for n in ("query", "key", "value")), f"{prefix}.attn.qkv")
    return out


# before the image formats: our (the release's) names, a qkv bias and no position table or class
# token, would otherwise pass for a timm ViT
FORMATS = (  # most specific first
    Format("Hugging Face transformers V-JEPA 2", VJEPA2.family,
           has(r"^(vjepa2\.)?encoder\.layer\.\d+\.attention\.query\.weight$"), hf_vjepa2),
    Format("official V-JEPA 2 encoder", VJEPA2.family, has(r"^(module\.)?backbone\.blocks\.\d+\.attn\.qkv\.bias$"),
           official_vjepa2),
    Format("V-JEPA 2 (vidpeft names)", VJEPA2.family,
           both(has(r"^blocks\.\d+\.attn\.qkv\.bias$", r"^norm\.weight$"),
                lacks(r"^(pos_embed|cls_token|reg_token|fc_norm\.weight)$")), official_vjepa2),
)
