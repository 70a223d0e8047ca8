"""Video Swin Transformer (Liu et al. 2022) on channels-last (B, T, H, W, C) tensors.

Window attention goes through SDPA with the relative position bias and the shift mask
combined into one additive attention mask. Parameter names follow the official release
(`layers.i.blocks.j`, `layers.i.downsample`), so its checkpoints load after removing the
`backbone.` prefix; window clipping and the shift mask follow torchvision exactly.

Extra tokens (B, L, C) can ride beside the grid, as the VPT reference's prompted Swin
(`PromptedSwinTransformer`) carries its prompts: in every block they are put first in every
window (zero relative bias, never masked), their attention outputs are averaged over the
windows (padded windows included) and they go through the residuals and the MLP like patch
tokens, skipping the blocks' method slots; patch merging concatenates four copies of each
before its norm and reduction; the final mean pools them with the patch tokens. They come
from `model.extra_tokens` (once, before the first block) or a block's `extra_tokens`, which
replaces the incoming ones (deep prompts)."""
from __future__ import annotations

import re
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from vidpeft.backbones.base import BackboneInfo, register_backbone
from vidpeft.backbones.formats import COMPUTED, Format, StateDict, has, rename
from vidpeft.backbones.layers import (
    TokenLayout, TransformerBlock, VideoClassifier, check_divisible, init_linear, prefix_kv,
    size_factory, stochastic_depth_rates,
)

Size3 = tuple[int, int, int]

# the value official Video Swin and torchvision add to masked pairs (not -inf)
MASK_VALUE = -100.0


def clip_window(size: Size3, window: Size3, shift: Size3) -> tuple[Size3, Size3]:
    """torchvision's rule: a window covering a whole dimension becomes that dimension, unshifted."""
    win = tuple(s if s <= w else w for s, w in zip(size, window))
    sh = tuple(0 if s <= w else h for s, w, h in zip(size, window, shift))
    return win, sh


@lru_cache(maxsize=64)
def shift_mask(padded: Size3, window: Size3, shift: Size3, device: torch.device) -> torch.Tensor:
    """(num_windows, 1, N, N) additive mask keeping attention inside the regions of a cyclic shift."""
    regions = [torch.zeros(p, dtype=torch.int64) for p in padded]
    for r, p, w, s in zip(regions, padded, window, shift):
        if s:  # three bands per shifted axis: [0, p-w), [p-w, p-s), [p-s, p)
            r[p - w :] = 1
            r[p - s :] = 2
    labels = regions[0][:, None, None] * 9 + regions[1][None, :, None] * 3 + regions[2][None, None, :]
    windows = partition(labels[None, ..., None], window).squeeze(-1)  # (nW, N)
    differs = windows[:, None, :] != windows[:, :, None]
    return (differs.float() * MASK_VALUE).unsqueeze(1).to(device)


def partition(x: torch.Tensor, window: Size3) -> torch.Tensor:
    """(B, T, H, W, C) -> (B * nW, N, C) with windows in (t, h, w) raster order."""
    b, t, h, w, c = x.shape
    x = x.view(b, t // window[0], window[0], h // window[1], window[1], w // window[2], window[2], c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window[0] * window[1] * window[2], c)


def unpartition(x: torch.Tensor, window: Size3, size: Size3) -> torch.Tensor:
    """(B * nW, N, C) -> (B, T, H, W, C), the inverse of `partition`."""
    t, h, w = size
    c = x.shape[-1]
    x = x.view(-1, t // window[0], h // window[1], w // window[2], window[0], window[1], window[2], c)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(-1, t, h, w, c)


def relative_position_index(window: Size3) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor(window) - 1
    strides = torch.tensor([(2 * window[1] - 1) * (2 * window[2] - 1), 2 * window[2] - 1, 1])
    return (rel * strides).sum(-1)


class WindowAttention3d(nn.Module):
    """(Shifted) window attention on (B, T, H, W, C); pads to whole windows like torchvision."""

    def __init__(self, dim: int, num_heads: int, window: Size3, shift: Size3) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window, self.shift = window, shift
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1), num_heads)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.kv_prefix: nn.Module | None = None

    def attention_mask(self, window: Size3, shift: Size3, padded: Size3, x: torch.Tensor) -> torch.Tensor:
        n = window[0] * window[1] * window[2]
        # like the official code (and torchvision), a clipped window uses the first N entries
        index = self.relative_position_index[:n, :n].reshape(-1)
        # index_select on the transposed table: its backward is a fast index_add into a contiguous
        # gradient, where table[index] accumulates through a slow strided index_put
        bias = self.relative_position_bias_table.t().index_select(1, index).view(-1, n, n).to(x.dtype)
        if any(shift):
            return bias + shift_mask(padded, window, shift, x.device).to(x.dtype)  # (nW, heads, N, N)
        return bias  # (heads, N, N), the same for every window

    def project_kv(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of extra tokens (n, L, C) through this attention's own qkv (prompt methods)."""
        n, length, _ = tokens.shape
        kv = self.qkv(tokens).view(n, length, 3, self.num_heads, self.head_dim)[:, :, 1:]
        return kv.permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None):
        """(B, T, H, W, C) -> the same; with extra tokens (B, L, C) -> (grid, extra tokens' outputs)."""
        b, t, h, w, c = x.shape
        window, shift = clip_window((t, h, w), self.window, self.shift)
        pad = [(-s) % win for s, win in zip((t, h, w), window)]
        if any(pad):
            x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        padded = (t + pad[0], h + pad[1], w + pad[2])
        if any(shift):
            x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        windows = partition(x, window)  # (B*nW, N, C)
        rows, n, _ = windows.shape
        num_windows = rows // b
        qkv = self.qkv(windows).view(b, num_windows, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each (B, nW, heads, N, d)
        mask = self.attention_mask(window, shift, padded, x)
        length = 0 if extra is None else extra.shape[1]
        if length:  # the extra tokens first in every window, as queries, keys and values
            shared = self.qkv(extra).view(b, 1, length, 3, self.num_heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
            q, k, v = (torch.cat((e.expand(-1, num_windows, -1, -1, -1), z), dim=3)
                       for e, z in zip(shared.unbind(0), (q, k, v)))
            mask = F.pad(mask, (length, 0, length, 0))
            n += length
        if self.kv_prefix is not None:
            k, v, prefix = prefix_kv(self.kv_prefix, rows, k.flatten(0, 1), v.flatten(0, 1))
            k = k.view(b, num_windows, self.num_heads, n + prefix, self.head_dim)
            v = v.view(b, num_windows, self.num_heads, n + prefix, self.head_dim)
            mask = F.pad(mask, (0, prefix))  # prefix columns: zero bias, never masked
        if mask.dim() == 4:
            # a per-window mask (nW, heads, N, N'): windows join the head axis so that the 4-D mask
            # broadcasts over the batch and SDPA can take its fused kernel (it needs 4-D inputs)
            q, k, v = (z.flatten(1, 2) for z in (q, k, v))
            mask = mask.flatten(0, 1)
        else:
            q, k, v = (z.flatten(0, 1) for z in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.unsqueeze(0))
        out = out.reshape(b, num_windows, self.num_heads, n, self.head_dim)
        if length:  # proj is affine, so averaging before it equals the reference's average after it
            extra_out = self.proj(out[:, :, :, :length].mean(1).transpose(1, 2).reshape(b, length, c))
            out, n = out[:, :, :, length:], n - length
        out = self.proj(out.transpose(2, 3).reshape(rows, n, c))
        x = unpartition(out, window, padded)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        if any(pad):
            x = x[:, :t, :h, :w].contiguous()
        return x if extra is None else (x, extra_out)


class PatchMerging(nn.Module):
    """2x2 spatial merge of (B, T, H, W, C) -> (B, T, H/2, W/2, 2C); odd sizes are zero-padded."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:4]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))

    def merge_extra(self, extra: torch.Tensor) -> torch.Tensor:
        """Extra tokens (B, L, C) -> (B, L, 2C): four copies side by side, as the VPT reference merges prompts."""
        return self.reduction(self.norm(extra.repeat(1, 1, 4)))


class PatchEmbed3d(nn.Module):
    def __init__(self, patch: Size3, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))


class SwinBlock(TransformerBlock):
    """A TransformerBlock that can carry extra tokens beside its grid (see the module's docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.extra_tokens: nn.Module | None = None  # called with the grid: (1 or B, L, C) replacing the carried ones

    def carry(self, x: torch.Tensor, extra: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.extra_tokens is not None:
            extra = self.extra_tokens(x).to(x.dtype).expand(len(x), -1, -1)
        if extra is None:
            return self(x), None
        x = self.pre_attn(x)
        attended, attended_extra = self.attn(self.norm1(x), self.norm1(extra))
        keep = self.drop_path(x.new_ones(len(x), 1, 1))  # one draw per sample for its grid and its extra tokens
        x, extra = self.post_attn(x + attended * keep[..., None, None]), extra + attended_extra * keep
        keep = self.drop_path(x.new_ones(len(x), 1, 1))
        x = self.post_mlp(x + self.mlp(self.norm2(x)) * keep[..., None, None])
        return x, extra + self.mlp(self.norm2(extra)) * keep


class Stage(nn.Module):
    def __init__(self, blocks: list[SwinBlock], downsample: nn.Module | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.token_layout = TokenLayout(channels_last=True)  # the stage's grid, after the previous merging
        for blk in blocks:
            blk.token_layout = self.token_layout

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None, checkpointing: bool):
        """The stage's blocks, then its patch merging: (grid, extra tokens or None) -> the same."""
        self.token_layout.grid = tuple(x.shape[1:4])
        use_cp = checkpointing and torch.is_grad_enabled()
        for blk in self.blocks:
            x, extra = (torch.utils.checkpoint.checkpoint(blk.carry, x, extra, use_reentrant=False) if use_cp
                        else blk.carry(x, extra))
        if self.downsample is not None:
            x, extra = self.downsample(x), None if extra is None else self.downsample.merge_extra(extra)
        return x, extra


class VideoSwin(VideoClassifier):
    """Swin3D: patch embed -> 4 stages (patch merging between) -> norm -> mean -> dropout -> head."""

    family = "videoswin"

    def __init__(
        self,
        num_classes: int = 400,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        patch_size: Size3 = (2, 4, 4),
        window_size: Size3 = (8, 7, 7),
        mlp_ratio: float = 4.0,
        in_chans: int = 3,
        drop_path_rate: float = 0.1,
        head_drop: float = 0.5,
        head_norm: bool = False,
        head_init_std: float = 0.02,
        head_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        window_size = tuple(window_size)
        shift_size = tuple(w // 2 for w in window_size)
        self.patch_embed = PatchEmbed3d(tuple(patch_size), in_chans, embed_dim)
        rates = iter(stochastic_depth_rates(drop_path_rate, sum(depths)))
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim = embed_dim * 2**i
            blocks = [
                SwinBlock(dim, WindowAttention3d(dim, heads, window_size, shift_size if j % 2 else (0, 0, 0)),
                          mlp_ratio, next(rates))
                for j in range(depth)
            ]
            self.layers.append(Stage(blocks, PatchMerging(dim) if i < len(depths) - 1 else None))
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(self.num_features, num_classes)
        self.token_grid: tuple[int, int, int] | None = None
        self.extra_tokens: nn.Module | None = None  # called with the embedded grid: (1 or B, L, C) to carry
        self.grad_checkpointing = False
        self.apply(init_linear)
        self.configure_head(head_norm, head_init_std, head_init_scale)

    @property
    def blocks(self) -> list[SwinBlock]:
        """Every transformer block of every stage, in order (a plain list: not registered twice)."""
        return [blk for stage in self.layers for blk in stage.blocks]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.patch_embed.patch_size, "VideoSwin")
        x = self.patch_embed(x)  # (B, T', H', W', C)
        self.token_grid = tuple(x.shape[1:4])
        extra = None if self.extra_tokens is None else self.extra_tokens(x).to(x.dtype).expand(len(x), -1, -1)
        for stage in self.layers:
            x, extra = stage(x, extra, self.grad_checkpointing)
        if extra is None:
            return self.norm(x).mean(dim=(1, 2, 3))
        tokens = x.shape[1] * x.shape[2] * x.shape[3] + extra.shape[1]  # the reference pools its prompts too
        return (self.norm(x).sum(dim=(1, 2, 3)) + self.norm(extra).sum(dim=1)) / tokens

    def final_norm(self) -> nn.Module:
        return self.norm

    def no_weight_decay(self) -> set[str]:
        return {"relative_position_bias_table"}  # as the official Video Swin (and timm's Swin)



SIZES = {
    "micro": dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=(2, 4, 4)),
    "t": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    "s": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    "b": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    "l": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}


def factory(size: str):
    doc = f"Video Swin-{size.upper()}, patch (2,4,4), window (8,7,7)"
    return size_factory(VideoSwin, SIZES, size, f"videoswin_{size}", doc)


# V-PETL's settings on Video Swin: PATT width 128, AdaptFormer's input norm2's output (V-PETL's Swin
# code); clip length 8 (the benchmark's).
METHOD_DEFAULTS = {"patt_dim": 128, "adapter_input": "norm2"}
for _size in SIZES:
    register_backbone(f"videoswin-{_size}", factory(_size),
                      BackboneInfo(VideoSwin.family, 8, method_defaults=METHOD_DEFAULTS, micro=_size == "micro"))


# ---------------------------------------------------------------- checkpoint formats

SWIN_COMMON = [(r"^backbone\.", ""), (r"^cls_head\.fc_cls\.", "head.")]


def official_videoswin(sd: StateDict) -> StateDict:
    """The Video Swin release (an mmaction 0.x model): `backbone.` + `cls_head.fc_cls.`."""
    return rename(sd, SWIN_COMMON, drop=COMPUTED)


def mmaction_videoswin(sd: StateDict) -> StateDict:
    """mmaction2 1.x SwinTransformer3D: as the official one, but the final norm is `norm3`."""
    return rename(sd, SWIN_COMMON + [(r"^norm3\.", "norm.")], drop=COMPUTED)


def torchvision_swin3d(sd: StateDict) -> StateDict:
    """torchvision swin3d_*: features.{2i} = stage i blocks, features.{2i+1} = its patch merging."""
    def stage(match: re.Match) -> str:
        index = int(match.group(1))
        return f"layers.{index // 2}.blocks." if index % 2 == 0 else f"layers.{index // 2}.downsample."

    out = {}
    for key, value in rename(sd, [(r"\.mlp\.0\.", ".mlp.fc1."), (r"\.mlp\.3\.", ".mlp.fc2.")], drop=COMPUTED).items():
        out[re.sub(r"^features\.(\d+)\.", stage, key)] = value
    return out


FORMATS = (  # most specific first
    Format("mmaction2 Video Swin", VideoSwin.family,
           has(r"^backbone\.layers\.\d+\.blocks\.\d+\.attn\.qkv\.weight$", r"^backbone\.norm3\.weight$"),
           mmaction_videoswin),
    Format("Video Swin (official release or vidpeft names)", VideoSwin.family,
           has(r"^(backbone\.)?layers\.\d+\.blocks\.\d+\.attn\.qkv\.weight$"), official_videoswin),
    Format("torchvision swin3d", VideoSwin.family, has(r"^features\.0\.\d+\.attn\.qkv\.weight$"), torchvision_swin3d),
)
