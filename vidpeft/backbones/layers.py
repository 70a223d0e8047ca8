"""Small layers shared by the backbone families."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2, the transformer feed-forward block (timm / official names)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TokenLayout:
    """How a block's residual stream maps to the (T, H, W) token grid; the backbone sets `grid` every forward.

    Two stream layouts exist: a token sequence (B, N, C) whose first N - T*H*W tokens are not patch
    tokens (class token, then prompts) and whose patch tokens follow in (t, h, w) raster order, or with
    `frames_in_batch` one sequence per frame (B*T, N, C) as an image model runs them; and Swin's
    channels-last (B, T, H, W, C), unpadded (its windows and their padding live inside attention).
    `to_grid(x)` -> ((B, C, T, H, W) view of the patch tokens, extra tokens or None) and
    `from_grid(grid, extra)` -> x are exact inverses."""

    def __init__(self, channels_last: bool = False, num_prefix_tokens: int = 0, frames_in_batch: bool = False) -> None:
        self.channels_last = channels_last
        self.num_prefix_tokens = num_prefix_tokens  # the backbone's own extra tokens (timm's name)
        self.frames_in_batch = frames_in_batch
        self.grid: tuple[int, int, int] | None = None

    def to_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.channels_last:
            return x.permute(0, 4, 1, 2, 3), None
        if self.grid is None:
            raise RuntimeError("token_layout.to_grid called before the backbone's forward set the grid")
        t, h, w = self.grid
        patches = h * w if self.frames_in_batch else t * h * w
        extra = x.shape[1] - patches
        if extra < 0:
            raise ValueError(f"a block's {x.shape[1]} tokens cannot hold the {t}x{h}x{w} token grid")
        grid = x[:, extra:].reshape(-1, t, h, w, x.shape[-1])
        return grid.permute(0, 4, 1, 2, 3), x[:, :extra]

    def from_grid(self, grid: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        x = grid.permute(0, 2, 3, 4, 1)
        if self.channels_last:
            return x
        b, t, h, w, c = x.shape
        x = x.reshape(b * t, h * w, c) if self.frames_in_batch else x.reshape(b, t * h * w, c)
        return torch.cat((extra, x), dim=1) if extra is not None and extra.shape[1] else x


class TransformerBlock(nn.Module):
    """Pre-norm block with the residual-stream slots methods fill (nn.Identity until then):

        x = pre_attn(x); x = post_attn(x + drop_path(attn(norm1(x)))); x = post_mlp(x + drop_path(mlp(norm2(x))))
    `token_layout` (shared with the other blocks on the same grid) maps the stream to the token grid."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float, drop_path: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)
        self.pre_attn, self.post_attn, self.post_mlp = nn.Identity(), nn.Identity(), nn.Identity()
        self.token_layout: TokenLayout | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_attn(x)
        x = self.post_attn(x + self.drop_path(self.attn(self.norm1(x))))
        return self.post_mlp(x + self.drop_path(self.mlp(self.norm2(x))))


class FusedQKVAttention(nn.Module):
    """Multi-head attention parts with one fused `qkv` Linear: the `kv_prefix` slot, `project` and
    `project_kv`; subclasses define `forward`."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.kv_prefix: nn.Module | None = None

    def fused_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(n, L, 3C) queries, keys and values in one product (VideoMAE adds its q / v biases here)."""
        return self.qkv(x)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of tokens (n, L, C), each (n, heads, L, head_dim)."""
        n, length, _ = x.shape
        return self.fused_qkv(x).view(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def project_kv(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of extra tokens (n, L, C) through this attention's own qkv (prompt methods)."""
        return self.project(tokens)[1:]


def prefix_kv(
    kv_prefix: nn.Module | None, rows: int, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Append the prefix provider's (k, v) tokens to k, v of shape (rows, heads, N, head_dim).

    Returns the new k, v and the number of prefix tokens (0 without a provider)."""
    if kv_prefix is None:
        return k, v, 0
    pk, pv = kv_prefix(rows)
    pk = pk.to(k.dtype).expand(rows, -1, -1, -1)
    pv = pv.to(v.dtype).expand(rows, -1, -1, -1)
    return torch.cat((k, pk), dim=2), torch.cat((v, pv), dim=2), pk.shape[2]


def qkv_with_qv_bias(qkv: nn.Module, q_bias: torch.Tensor | None, v_bias: torch.Tensor | None,
                     x: torch.Tensor) -> torch.Tensor:
    """qkv(x) plus separate q and v biases (k has none), as VideoMAE and BEiT keep them."""
    if q_bias is None:
        return qkv(x)
    bias = torch.cat((q_bias, torch.zeros_like(q_bias), v_bias))
    if type(qkv) is nn.Linear:  # fused into the matmul; a method's wrapper gets the same sum below
        return F.linear(x, qkv.weight, bias)
    return qkv(x).add_(bias)  # in place: a wrapper's output is not needed by its backward (autograd checks)


def stochastic_depth_rates(rate: float, depth: int) -> list[float]:
    """Linearly increasing drop-path rates from 0 to `rate` over `depth` blocks."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


def check_divisible(x: torch.Tensor, patch: tuple[int, int, int], name: str) -> None:
    t, h, w = x.shape[-3:]
    if x.ndim != 5 or t % patch[0] or h % patch[1] or w % patch[2]:
        raise ValueError(
            f"{name} expects a float tensor (B, 3, T, H, W) with T divisible by {patch[0]} and "
            f"H, W divisible by {patch[1]}, got shape {tuple(x.shape)}"
        )


def run_blocks(blocks, x: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    """Run blocks in order, with per-block activation checkpointing when asked and useful."""
    use_cp = checkpointing and torch.is_grad_enabled()
    for blk in blocks:
        if use_cp:
            x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
        else:
            x = blk(x)
    return x


def init_linear(m: nn.Module) -> None:
    """Truncated-normal (std 0.02) Linear weights and zero biases, as both official releases."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class VideoClassifier(nn.Module):
    """What both families share around `forward_features`: the head and the checkpointing switch.

    Subclasses set `num_features`, `head_drop`, `head` and `grad_checkpointing`, then call
    `configure_head`. forward = head(head_norm(head_drop(forward_features(x))))."""

    def configure_head(self, norm: bool = False, init_std: float = 0.02, init_scale: float = 1.0) -> None:
        """Head options of published recipes: `norm` puts BatchNorm1d(affine=False, eps 1e-6) before
        the linear head (MAE / AdaptFormer linear probing, `main_video.py`); the head weight is
        trunc-normal with `init_std` (AdaptFormer: 0.01), times `init_scale` (VideoMAE
        `--init_scale 0.001`), its bias zero."""
        self.head_norm = nn.BatchNorm1d(self.num_features, affine=False, eps=1e-6) if norm else nn.Identity()
        self.head_init = (float(init_std), float(init_scale))
        self.init_head()

    def init_head(self) -> None:
        std, scale = self.head_init
        linear = getattr(self.head, "base_layer", self.head)
        with torch.no_grad():
            nn.init.trunc_normal_(linear.weight, std=std)
            linear.weight.mul_(scale)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_norm(self.head_drop(self.forward_features(x))))

    def prepend_extra_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (N, L, C) with the extra-token slot's tokens (prompts) first, counted in `num_prefix_tokens`."""
        self.num_prefix_tokens = 0
        if self.extra_tokens is None:
            return x
        extra = self.extra_tokens(x).to(x.dtype)
        self.num_prefix_tokens = extra.shape[1]
        return torch.cat((extra.expand(x.shape[0], -1, -1), x), dim=1)

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes).to(self.head.weight)
        self.init_head()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Parameter names (or name suffixes) exempt from weight decay besides every tensor with
        ndim <= 1 (timm's convention)."""
        return set()


def size_factory(cls: type[nn.Module], sizes: dict[str, dict], size: str, name: str, doc: str):
    """A registry factory `build(num_classes, **kwargs)` for one size of a family."""

    def build(num_classes: int = 400, **kwargs) -> nn.Module:
        return cls(num_classes=num_classes, **{**sizes[size], **kwargs})

    build.__name__ = name
    build.__doc__ = f"{doc}: {sizes[size]}"
    return build
