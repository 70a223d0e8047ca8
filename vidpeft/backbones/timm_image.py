"""Image models of timm (ViT incl. CLIP towers, BEiT / BEiT v2, Eva: DINOv3, EVA-02) applied to video frame by frame.

timm builds the image model (no download); each block becomes a `FrameBlock` that keeps timm's
parameter names, adds vidpeft's hook points (residual slots, `kv_prefix`, `project_kv`,
`token_layout`) and runs attention through SDPA exactly as timm computes it (q/v biases and
relative position bias of BEiT and the rotary embedding of Eva included; Eva's query, key and value
projections run fused, as timm's `qkv_fused`, and separate ones in checkpoints are fused on loading). A clip (B, 3, T, H, W) is B·T images; an optional
zero-initialised temporal embedding is added to every token of frame t (where AIM adds it:
after the position embedding, before the pre-norm), and the clip feature is the mean over
frames of timm's pooled feature. Weights sit under `image.` with timm's names.
"""
from __future__ import annotations

import io
import re
from functools import lru_cache

import numpy as np
import timm
import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.layers import apply_rot_embed_cat
from timm.models import beit as timm_beit
from timm.models import eva as timm_eva
from timm.models import vision_transformer as timm_vit
from torch import nn

from vidpeft.backbones.base import BackboneInfo, register_backbone, register_resolver
from vidpeft.backbones.formats import Format, both, fuse_qkv, has, lacks, same
from vidpeft.backbones.layers import (
    TokenLayout, VideoClassifier, check_divisible, prefix_kv, qkv_with_qv_bias, run_blocks,
)
from vidpeft.errors import UnknownName, UserError

StateDict = dict[str, torch.Tensor]
PREFIX = "image."  # where the timm model's own names live in ours
TEMPORAL = "temporal_embed"


class FrameAttention(nn.Module):
    """timm's `Attention` (ViT), BEiT's or Eva's (fused qkv) with the same parameters, through SDPA."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        if getattr(attn, "gate", None) is not None:
            raise UserError("gated timm attention is not supported")
        self.num_heads = attn.num_heads
        self.head_dim = attn.qkv.out_features // (3 * attn.num_heads)
        self.qkv = attn.qkv
        self.q_bias = getattr(attn, "q_bias", None)  # BEiT: q and v biases beside a bias-free qkv
        self.v_bias = getattr(attn, "v_bias", None)
        self.q_norm = getattr(attn, "q_norm", nn.Identity())
        self.k_norm = getattr(attn, "k_norm", nn.Identity())
        self.norm = getattr(attn, "norm", nn.Identity())
        self.proj = attn.proj
        self.proj_drop = attn.proj_drop
        self.attn_drop = attn.attn_drop.p
        self.relative_position_bias_table = getattr(attn, "relative_position_bias_table", None)
        if self.relative_position_bias_table is not None:
            self.window_size = tuple(attn.window_size)
            self.register_buffer("relative_position_index", attn.relative_position_index, persistent=False)
        self.token_layout: TokenLayout | None = None  # set by the backbone: the patch grid of this forward
        self.kv_prefix: nn.Module | None = None
        # Eva: the rotary embedding of this forward's patch grid (set by the backbone), timm's layout flag
        self.rope: torch.Tensor | None = None
        self.rotate_half = getattr(attn, "rotate_half", False)
        lost = set(attn.state_dict()) - set(self.state_dict())
        if lost:
            raise UserError(f"timm attention {type(attn).__name__} has parts vidpeft does not run: {sorted(lost)}")

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v of tokens (n, L, C), each (n, heads, L, head_dim), with timm's biases and q/k norms."""
        n, length, _ = x.shape
        qkv = qkv_with_qv_bias(self.qkv, self.q_bias, self.v_bias, x)
        q, k, v = qkv.view(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return self.q_norm(q), self.k_norm(k), v

    def project_kv(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, k, v = self.heads(tokens)
        return k, v

    def position_index(self) -> torch.Tensor:
        """The table rows of every token pair on this forward's patch grid (BEiT's own index on its grid)."""
        grid = tuple(self.token_layout.grid[1:])
        if grid == self.window_size:
            return self.relative_position_index
        if grid[0] > self.window_size[0] or grid[1] > self.window_size[1]:
            raise UserError(f"BEiT's relative position table covers {self.window_size[0]}x{self.window_size[1]} patches, "
                             f"frames give {grid[0]}x{grid[1]}; build the backbone with a larger img_size")
        return relative_position_index(self.window_size, grid, self.relative_position_index.device)

    def position_bias(self, length: int) -> torch.Tensor | None:
        """BEiT's relative position bias (heads, L, L); extra tokens after the class token get zeros."""
        table = self.relative_position_bias_table
        if table is None:
            return None
        index = self.position_index()
        m = index.shape[0]
        bias = table.t().index_select(1, index.view(-1)).view(-1, m, m)
        if length == m:
            return bias
        keep = torch.cat((torch.zeros(1, dtype=torch.long), torch.arange(1 + length - m, length))).to(bias.device)
        full = bias.new_zeros(bias.shape[0], length, length)
        full[:, keep[:, None], keep[None, :]] = bias
        return full

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, _, length, _ = q.shape
        if mask is not None:
            mask = mask.to(q.dtype).unsqueeze(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        out = self.norm(out.transpose(1, 2).reshape(n, length, -1))
        return self.proj_drop(self.proj(out))

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """Eva's rotary embedding on the patch tokens (the last H·W), as timm applies it after its prefix tokens."""
        if self.rope is None:
            return x
        start = x.shape[2] - self.rope.shape[-2]
        rotated = apply_rot_embed_cat(x[:, :, start:], self.rope, half=self.rotate_half)
        return torch.cat((x[:, :, :start], rotated), dim=2).type_as(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)
        q, k = self.rotate(q), self.rotate(k)
        mask = self.position_bias(x.shape[1])
        k, v, extra = prefix_kv(self.kv_prefix, x.shape[0], k, v)
        if extra and mask is not None:
            mask = F.pad(mask, (0, extra))  # prefix columns: zero bias
        return self.attend(q, k, v, mask)

    def plain_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention of the tokens of x (n, L, C) with these weights, no position bias or prefix
        (AIM's temporal attention: the L tokens are one spatial position over time)."""
        return self.attend(*self.heads(x), None)


@lru_cache(maxsize=16)
def relative_position_index(window: tuple[int, int], grid: tuple[int, int], device: torch.device) -> torch.Tensor:
    """timm's `gen_relative_position_index` for a grid no larger than the table's window: each patch
    pair reads the entry of its offset; the class token's row, column and corner the last three."""
    coords = torch.stack(torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    patches = (rel[0] + window[0] - 1) * (2 * window[1] - 1) + rel[1] + window[1] - 1
    distances = (2 * window[0] - 1) * (2 * window[1] - 1) + 3
    index = torch.zeros(patches.shape[0] + 1, patches.shape[0] + 1, dtype=torch.long)
    index[1:, 1:] = patches
    index[0, :], index[:, 0], index[0, 0] = distances - 3, distances - 2, distances - 1
    return index.to(device)


class FrameBlock(nn.Module):
    """A timm ViT, BEiT or Eva block with its own submodules and names, plus the residual slots."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        if type(block) not in (timm_vit.Block, timm_beit.Block, timm_eva.EvaBlock):
            raise UserError(f"timm block type {type(block).__name__} is not supported (ViT, BEiT or Eva Block)")
        self.pre_attn = nn.Identity()
        self.norm1 = block.norm1
        self.attn = FrameAttention(block.attn)
        self.ls1 = getattr(block, "ls1", nn.Identity())  # ViT layer scale
        self.gamma_1 = getattr(block, "gamma_1", None)  # BEiT / Eva layer scale
        self.drop_path1 = block.drop_path1
        self.post_attn = nn.Identity()
        self.norm2 = block.norm2
        self.mlp = block.mlp
        self.ls2 = getattr(block, "ls2", nn.Identity())
        self.gamma_2 = getattr(block, "gamma_2", None)
        self.drop_path2 = block.drop_path2
        self.post_mlp = nn.Identity()
        self.token_layout: TokenLayout | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_attn(x)
        y = self.attn(self.norm1(x))
        x = x + self.drop_path1(self.ls1(y) if self.gamma_1 is None else self.gamma_1 * y)
        x = self.post_attn(x)
        y = self.mlp(self.norm2(x))
        x = x + self.drop_path2(self.ls2(y) if self.gamma_2 is None else self.gamma_2 * y)
        return self.post_mlp(x)


class FrameWiseVideo(VideoClassifier):
    """An image model of timm applied to every frame; features averaged over frames, then a head."""

    frame_wise = True
    video_only_keys = (TEMPORAL,)  # what no image checkpoint holds

    def __init__(self, image: nn.Module, timm_name: str, timm_kwargs: dict, num_classes: int = 400,
                 num_frames: int = 8, temporal_embedding: bool = True, head_drop: float = 0.0) -> None:
        super().__init__()
        for i, block in enumerate(image.blocks):
            image.blocks[i] = FrameBlock(block)
        self.image = image
        self.timm_name, self.timm_kwargs = timm_name, dict(timm_kwargs)
        self.num_features = image.num_features
        self.temporal_embed = (nn.Parameter(torch.zeros(1, num_frames, self.num_features))
                               if temporal_embedding else None)
        self.head_drop = nn.Dropout(head_drop)
        self.head = nn.Linear(self.num_features, num_classes)
        self.configure_head()
        # one token sequence per frame (B·T, P + H·W, C), P = class / register tokens first
        self.token_layout = TokenLayout(num_prefix_tokens=image.num_prefix_tokens, frames_in_batch=True)
        for block in image.blocks:
            block.token_layout = block.attn.token_layout = self.token_layout
        self.token_grid: tuple[int, int, int] | None = None
        # extra-token slot: None or a module called with the embedded tokens (N, L, C) that returns
        # tokens (N or 1, P, C) put after the image model's own prefix tokens in every frame (prompts);
        # they are dropped before timm's pooling
        self.extra_tokens: nn.Module | None = None
        self.grad_checkpointing = False

    @property
    def blocks(self) -> nn.Module:
        return self.image.blocks

    @property
    def patch_embed(self) -> nn.Module:
        return self.image.patch_embed

    def final_norm(self) -> nn.Module:
        """The norm before the head: timm's fc_norm when it pools first (BEiT), else its norm."""
        return self.image.norm if isinstance(self.image.fc_norm, nn.Identity) else self.image.fc_norm

    def no_weight_decay(self) -> set[str]:
        return {PREFIX + name for name in self.image.no_weight_decay()} | {TEMPORAL}

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """Patch embedding, prefix tokens and position embedding of images (N, 3, H, W) -> (N, L, C)."""
        raise NotImplementedError

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Blocks and final norm of timm's forward_features."""
        return self.image.norm(run_blocks(self.image.blocks, tokens, self.grad_checkpointing))

    def add_temporal(self, tokens: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
        if self.temporal_embed is None:
            return tokens
        table = self.temporal_embed
        if table.shape[1] != frames:  # another clip length: linear interpolation over time
            table = F.interpolate(table.transpose(1, 2), size=frames, mode="linear", align_corners=False).transpose(1, 2)
        tokens = tokens.view(batch, frames, *tokens.shape[1:]) + table[:, :, None].to(tokens.dtype)
        return tokens.flatten(0, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        patch = tuple(self.image.patch_embed.patch_size)
        check_divisible(x, (1, *patch), self.timm_name)
        b, _, t, h, w = x.shape
        self.token_grid = self.token_layout.grid = (t, h // patch[0], w // patch[1])
        tokens = self.add_temporal(self.embed(x.transpose(1, 2).flatten(0, 1)), b, t)
        own = self.image.num_prefix_tokens
        extra = 0
        if self.extra_tokens is not None:
            prompts = self.extra_tokens(tokens).to(tokens.dtype)
            extra = prompts.shape[1]
            tokens = torch.cat((tokens[:, :own], prompts.expand(tokens.shape[0], -1, -1), tokens[:, own:]), dim=1)
        tokens = self.encode(tokens)
        if extra:
            tokens = torch.cat((tokens[:, :own], tokens[:, own + extra:]), dim=1)
        return self.image.forward_head(tokens, pre_logits=True).view(b, t, -1).mean(1)

    def adapt_checkpoint(self, sd: StateDict) -> StateDict:
        """timm's own conversion of a checkpoint to the image model's names, then our prefix."""
        raise NotImplementedError


class FrameWiseViT(FrameWiseVideo):
    family = "timm-vit"

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        return self.image._pos_embed(self.image.patch_embed(frames))

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().encode(self.image.norm_pre(self.image.patch_drop(tokens)))

    def adapt_checkpoint(self, sd: StateDict) -> StateDict:
        if any(k.startswith(NPZ_PREFIXES) for k in sd):
            return npz_to_timm(sd, self)
        return prefixed(timm_vit.checkpoint_filter_fn(sd, self.image))


class FrameWiseBeit(FrameWiseVideo):
    family = "timm-beit"

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        image = self.image
        x = image.patch_embed(frames)
        x = torch.cat((image.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if image.pos_embed is not None:
            x = x + resample_abs_pos_embed(image.pos_embed, list(self.token_layout.grid[1:]),
                                           list(image.patch_embed.grid_size), num_prefix_tokens=1)
        return image.pos_drop(x)

    def adapt_checkpoint(self, sd: StateDict) -> StateDict:
        sd = {k: v for k, v in sd.items() if not k.startswith(BEIT_PRETRAINING_ONLY)}
        shared = sd.pop("rel_pos_bias.relative_position_bias_table", None)
        if shared is not None:  # as BEiT's fine-tuning does: the shared table copied into every block
            for i in range(len(self.image.blocks)):
                sd.setdefault(f"blocks.{i}.attn.relative_position_bias_table", shared.clone())
        return prefixed(timm_beit.checkpoint_filter_fn(sd, self.image))


class FrameWiseEva(FrameWiseVideo):
    """timm's Eva (DINOv3, EVA-02, ...): class and register tokens, absolute positions where the model
    has them, and a 2-D rotary embedding of the frame's patch grid in every attention."""

    family = "timm-eva"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # the attentions themselves, kept before any method wraps `block.attn` (a tuple: not submodules)
        self.rotated = tuple(block.attn for block in self.image.blocks)

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        tokens, rope = self.image._pos_embed(self.image.patch_embed(frames))
        for attn in self.rotated:
            attn.rope = rope
        return tokens

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().encode(self.image.norm_pre(tokens))

    def adapt_checkpoint(self, sd: StateDict) -> StateDict:
        sd = timm_eva.checkpoint_filter_fn(sd, self.image)
        for prefix in sorted({k.rsplit(".q_proj.", 1)[0] for k in sd if ".attn.q_proj." in k}):
            fuse_qkv(sd, (f"{prefix}.q_proj", f"{prefix}.k_proj", f"{prefix}.v_proj"), f"{prefix}.qkv")
            for name in ("q", "v"):  # the key projection has no bias in Eva
                if f"{prefix}.{name}_proj.bias" in sd:
                    sd[f"{prefix}.{name}_bias"] = sd.pop(f"{prefix}.{name}_proj.bias")
        return prefixed(sd)


# BEiT v2 pre-training heads (masked-token prediction and the patch-aggregation layers), dropped as
# BEiT's own fine-tuning drops them
BEIT_PRETRAINING_ONLY = ("mask_token", "lm_head.", "cls_pt_layers.", "cls_pt_norm.", "cls_pt_lm_head.")
# Google's .npz entries, optionally under a training-state prefix
NPZ_PREFIXES = ("embedding/", "Transformer/", "opt/target/", "params/")
# .npz entries timm's loader leaves unread: the image classifier (our image model has none) and
# the representation layer (dropped by timm, unused in the 21k/1k releases)
NPZ_UNUSED = r"^(opt/target/|params/)?(head|pre_logits)/"


def prefixed(sd: StateDict) -> StateDict:
    return {PREFIX + k: v for k, v in sd.items()}


def npz_to_timm(sd: StateDict, model: FrameWiseVideo) -> StateDict:
    """Google's .npz through timm's `_load_weights`, into a plain timm model of the same architecture.

    The plain model starts as NaN, so a tensor timm did not fill is reported missing, not loaded."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.numpy() for k, v in sd.items()})
    buffer.seek(0)
    plain = timm.create_model(model.timm_name, **model.timm_kwargs)
    with torch.no_grad():
        for p in plain.parameters():
            p.fill_(float("nan"))
        try:
            timm_vit._load_weights(plain, buffer)
        except KeyError as error:
            raise UserError(f"the .npz lacks {error}; is it a {model.timm_name}?") from None
        except RuntimeError as error:
            raise UserError(f"a tensor of the .npz does not fit {model.timm_name} ({error}); is this the right "
                             "model size?") from None
    out = prefixed({k: v for k, v in plain.state_dict().items() if not v.isnan().any()})
    out.update({k: v for k, v in sd.items() if re.search(NPZ_UNUSED, k)})  # reported as unexpected
    return out


def build(timm_name: str, num_classes: int = 400, num_frames: int = 8, temporal_embedding: bool = True,
          img_size: int = 224, drop_path_rate: float = 0.0, head_drop: float = 0.0, **timm_kwargs) -> FrameWiseVideo:
    """A timm image model by name (no download) as a frame-wise video classifier."""
    entry = timm_name.split(".")[0]
    if not timm.is_model(entry):
        raise UserError(f"timm has no model {timm_name!r} (see timm.list_models())")
    kwargs = dict(pretrained=False, num_classes=0, img_size=img_size, drop_path_rate=drop_path_rate, **timm_kwargs)
    kwargs.update(_dynamic_size(entry))
    if _module_of(entry) == timm_eva.__name__:
        kwargs["qkv_fused"] = True  # one qkv projection (the contract's); checkpoints are fused on loading
    image = timm.create_model(timm_name, **kwargs)
    if isinstance(image, timm_vit.VisionTransformer):
        cls = FrameWiseViT
    elif isinstance(image, timm_beit.Beit):
        if image.rel_pos_bias is not None:
            raise UserError(f"{timm_name}: a shared relative position bias is not supported")
        cls = FrameWiseBeit
        image.patch_embed.strict_img_size = False  # smaller frames read their offsets from the table
    elif isinstance(image, timm_eva.Eva):
        if getattr(image, "rope_mixed", False) or any(type(b) is not timm_eva.EvaBlock for b in image.blocks):
            raise UserError(f"{timm_name}: Eva models with mixed (per-block) rotary embeddings or post-norm blocks "
                             "are not supported")
        cls = FrameWiseEva
    else:
        raise UserError(f"timm model {timm_name!r} is a {type(image).__name__}; frame-wise video supports timm's "
                         "VisionTransformer (ViT, CLIP, ...), Beit and Eva (DINOv3, EVA-02) models")
    return cls(image, timm_name, kwargs, num_classes, num_frames, temporal_embedding, head_drop)


def _module_of(entry: str) -> str:
    return timm.models.model_entrypoint(entry).__module__


def _dynamic_size(entry: str) -> dict:
    """ViTs and Evas take any frame size divisible by the patch (timm resamples the position embedding
    and builds the rotary embedding of the grid)."""
    return {"dynamic_img_size": True} if _module_of(entry) in (timm_vit.__name__, timm_eva.__name__) else {}


MICRO = dict(embed_dim=64, depth=2, num_heads=2)  # tests and demos
# short names -> (timm model name, default options); any other timm model is `timm/<model name>`
ALIASES = {
    "vit-b16-in21k": ("vit_base_patch16_224.orig_in21k", {}),  # Google's ViT-B_16.npz (V-PETL's image table)
    "clip-b16": ("vit_base_patch16_clip_quickgelu_224.openai", {}),  # OpenAI CLIP ViT-B/16 (AIM, ST-Adapter)
    "beitv2-b16": ("beitv2_base_patch16_224.in1k_ft_in22k_in1k", {}),
    "clip-micro": ("vit_base_patch16_clip_quickgelu_224.openai", MICRO),
    # layer scale 0.1 (of the order of trained BEiT v2 weights) instead of its 1e-5 initialisation,
    # which would hide every branch of a randomly initialised micro model
    "beitv2-micro": ("beitv2_base_patch16_224.in1k_ft_in22k_in1k", {**MICRO, "init_values": 0.1}),
    "dinov3-b16": ("vit_base_patch16_dinov3.lvd1689m", {}),  # Eva class: RoPE, 4 register tokens
    "eva02-b14": ("eva02_base_patch14_224.mim_in22k", {}),  # Eva class: RoPE, SwiGLU, separate q/k/v
    # layer scale 0.1 as on beitv2-micro (DINOv3 initialises it at 1e-5)
    "dinov3-micro": ("vit_base_patch16_dinov3.lvd1689m", {**MICRO, "init_values": 0.1}),
    "eva02-micro": ("eva02_base_patch14_224.mim_in22k", {**MICRO, "patch_size": 16}),  # the tests' 64-pixel frames
}
TIMM_PREFIX = "timm/"


def factory(timm_name: str, defaults: dict):
    def build_named(num_classes: int = 400, **kwargs) -> FrameWiseVideo:
        return build(timm_name, num_classes=num_classes, **{**defaults, **kwargs})

    build_named.__name__ = re.sub(r"\W", "_", timm_name)
    build_named.__doc__ = f"timm {timm_name} applied frame-wise{': ' + str(defaults) if defaults else ''}"
    return build_named


def resolve(name: str) -> tuple[callable, BackboneInfo] | None:
    """`timm/<model name>` -> its factory and facts; None for names that are not of that form."""
    if not name.startswith(TIMM_PREFIX):
        return None
    timm_name = name[len(TIMM_PREFIX):]
    if not timm.is_model(timm_name.split(".")[0]):
        raise UnknownName(f"unknown backbone {name!r}: timm has no model {timm_name!r} (see timm.list_models())")
    return factory(timm_name, {}), image_info(timm_name)


def image_info(timm_name: str, micro: bool = False) -> BackboneInfo:
    """A timm image model applied frame-wise: 8 frames (AIM's clips), timm's mean/std and input size."""
    mean, std, size = normalisation(timm_name)
    return BackboneInfo(family_of(timm_name), 8, mean, std, {"patt_dim": 32}, frame_wise=True, input_size=size,
                        micro=micro)


def family_of(timm_name: str) -> str:
    """timm-vit, timm-beit or timm-eva, from the module that defines the model (nothing is built)."""
    module = _module_of(timm_name.split(".")[0])
    families = {timm_vit.__name__: FrameWiseViT.family, timm_beit.__name__: FrameWiseBeit.family,
                timm_eva.__name__: FrameWiseEva.family}
    if module not in families:
        raise UserError(f"timm model {timm_name!r} is not a VisionTransformer, Beit or Eva; frame-wise video "
                         "supports those three families")
    return families[module]


def normalisation(timm_name: str) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """Input mean, std and frame side of the pretrained weights, from timm's pretrained config of the model."""
    try:
        cfg = timm.models.get_pretrained_cfg(timm_name)
    except RuntimeError as error:  # an unknown pretrained tag
        raise UnknownName(f"timm/{timm_name}: {error}") from None
    if cfg is None:
        raise UnknownName(f"timm/{timm_name}: timm has no pretrained config for it")
    return tuple(cfg.mean), tuple(cfg.std), cfg.input_size[-1]


for _alias, (_timm_name, _defaults) in ALIASES.items():
    register_backbone(_alias, factory(_timm_name, _defaults), image_info(_timm_name, micro=_defaults.items() >= MICRO.items()))
register_resolver(resolve)


# ---------------------------------------------------------------- checkpoint formats
# A ViT or BEiT has a class token or a qkv bias; VideoMAE has neither (q_bias / v_bias beside a bias-free qkv).

def timm_vit_keys(keys: set[str]) -> bool:
    return has(r"^blocks\.\d+\.attn\.qkv\.weight$")(keys) and has(r"^(cls_token|blocks\.\d+\.attn\.qkv\.bias)$")(keys)


# Eva: SwiGLU (fc1_g) or layer scale without BEiT's relative position tables (per block, or the shared one of
# BEiT v2's pre-training release); DINOv3's release keys
# (storage tokens, rope_embed), EVA-02's (separate q/k/v projections, w1/w12 SwiGLU, rope buffers)
EVA_RELEASE = r"^(storage_tokens|rope_embed\.periods|rope\.freqs_cos|blocks\.\d+\.attn\.q_proj\.weight|blocks\.\d+\.mlp\.(fc1_g|w1|w12)\.weight)$"


def eva_keys(prefix: str):
    return both(has(rf"^{prefix}blocks\.\d+\.(mlp\.fc1_g\.weight|gamma_1)$"),
                lacks(rf"^{prefix}(blocks\.\d+\.attn|rel_pos_bias)\.relative_position_bias_table$"))


FORMATS = (  # most specific first
    Format("vidpeft timm Eva", FrameWiseEva.family, both(has(r"^image\.blocks\.\d+\.attn\.qkv\.weight$"), eva_keys(r"image\.")),
           same),
    Format("timm / official Eva (DINOv3, EVA-02)", FrameWiseEva.family,
           lambda keys: has(EVA_RELEASE)(keys) or both(has(r"^cls_token$"), eva_keys(""))(keys), same, by_model=True),
    Format("vidpeft timm BEiT", FrameWiseBeit.family, has(r"^image\.blocks\.\d+\.attn\.q_bias$"), same),
    Format("vidpeft timm ViT", FrameWiseViT.family, has(r"^image\.blocks\.\d+\.attn\.qkv\.weight$"), same),
    Format("OpenAI CLIP / open_clip", FrameWiseViT.family,
           has(r"^(module\.)?visual\.(class_embedding|trunk\.pos_embed|trunk\.blocks\.0\.norm1\.weight)$"), same,
           by_model=True),
    Format("Google ViT .npz", FrameWiseViT.family,
           has(r"^(opt/target/|params/)?(Transformer/encoderblock|embedding/kernel)"), same, by_model=True),
    Format("official BEiT v2 pre-training", FrameWiseBeit.family,
           has(r"^cls_token$", r"^blocks\.\d+\.attn\.q_bias$", r"^(lm_head\.weight|mask_token)$"), same, by_model=True),
    Format("timm / official BEiT", FrameWiseBeit.family, has(r"^cls_token$", r"^blocks\.\d+\.attn\.q_bias$"), same,
           by_model=True),
    Format("timm ViT", FrameWiseViT.family, timm_vit_keys, same, by_model=True),
)
