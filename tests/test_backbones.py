"""The backbone contract (docs/ARCHITECTURE.md) on every registered backbone."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from transformers import VideoMAEConfig, VideoMAEModel

from vidpeft.backbones import BACKBONES, Backbone, backbone_info, build_backbone, micro_backbones, videoswin

MICRO = micro_backbones()


def clip(shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def token_size(model: nn.Module) -> tuple[int, int, int]:
    """(t, h, w) pixels per token: the patch embedding's, t = 1 for an image model applied frame-wise."""
    patch = tuple(model.patch_embed.patch_size)
    return patch if len(patch) == 3 else (1, *patch)


def n_params(model: nn.Module, skip_head: bool = True) -> int:
    return sum(p.numel() for n, p in model.named_parameters()
               if not (skip_head and n.startswith(("head.", "classifier."))))


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_registered_backbone_keeps_the_contract(name):
    """The Backbone protocol (vidpeft/backbones/base.py) on every registered backbone, at full size on the
    meta device, and the parts every block and attention have."""
    with torch.device("meta"):
        model = build_backbone(name, 3)
    assert isinstance(model, Backbone)
    assert model.family == backbone_info(name).family and model.extra_tokens is None
    assert isinstance(model.head, nn.Linear) and isinstance(model.final_norm(), nn.Module)
    for blk in model.blocks:
        assert all(hasattr(blk, part) for part in ("norm1", "attn", "norm2", "mlp", "pre_attn", "post_attn",
                                                    "post_mlp", "token_layout"))
        attn = blk.attn
        assert isinstance(attn.qkv, nn.Linear) and attn.qkv.out_features == 3 * attn.num_heads * attn.head_dim
        assert isinstance(attn.proj, nn.Linear) and attn.kv_prefix is None and callable(attn.project_kv)


def test_every_family_has_a_micro_configuration():
    families = {backbone_info(name).family for name in BACKBONES.names()}
    assert {backbone_info(name).family for name in MICRO} == families
    with pytest.raises(KeyError, match="unknown backbone 'vit-b': choose one of .*videomae-b"):
        build_backbone("vit-b", 10)


@pytest.mark.parametrize("size, hf", [
    ("s", dict(hidden_size=384, num_attention_heads=6, intermediate_size=1536)),
    ("b", dict()),
    ("l", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)),
    ("h", dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, intermediate_size=5120)),
])
def test_videomae_sizes_match_transformers(size, hf):
    with torch.device("meta"):
        ours = build_backbone(f"videomae-{size}", 400)
        theirs = VideoMAEModel(VideoMAEConfig(**hf))
    # transformers' VideoMAEModel has no fc_norm (it sits in the classification model)
    assert n_params(ours) == n_params(theirs) + 2 * ours.num_features
    if size == "b":
        assert n_params(ours) == 86_227_200  # METHODS.md: "86.2M with tubelet embed and fc_norm"


@pytest.mark.parametrize("size", ["t", "s", "b", "l"])
def test_videoswin_sizes_match_torchvision(size):
    cfg = videoswin.SIZES[size]
    with torch.device("meta"):
        ours = build_backbone(f"videoswin-{size}", 400)
        theirs = torchvision.models.video.SwinTransformer3d(
            patch_size=[2, 4, 4], embed_dim=cfg["embed_dim"], depths=list(cfg["depths"]),
            num_heads=list(cfg["num_heads"]), window_size=[8, 7, 7], num_classes=400)
    assert n_params(ours) == n_params(theirs)
    assert ours.num_features == theirs.num_features
    if size == "b":
        assert n_params(ours) == 87_638_984


@pytest.mark.parametrize("name", MICRO)
@pytest.mark.parametrize("shape", [(2, 3, 8, 64, 64), (1, 3, 4, 32, 48), (1, 3, 16, 96, 64)])
def test_any_clip_size_gives_logits_and_token_grid(name, shape):
    model = build_backbone(name, 7).eval()
    patch = token_size(model)
    x = clip(shape)
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(logits, model.head(model.head_drop(model.forward_features(x))))
    assert logits.shape == (shape[0], 7) and torch.isfinite(logits).all()
    assert model.token_grid == tuple(s // p for s, p in zip(shape[2:], patch))
    assert model.forward_features(x).shape == (shape[0], model.num_features)


@pytest.mark.parametrize("name", MICRO)
def test_bad_input_shape_is_a_clear_error(name):
    t, h, _ = token_size(build_backbone(name, 3))
    with pytest.raises(ValueError, match=rf"T divisible by {t} and H, W divisible by {h}, got shape \(1, 3, 7, 66, 64\)"):
        build_backbone(name, 3)(torch.zeros(1, 3, 7, 66, 64))


@pytest.mark.parametrize("name", MICRO)
def test_contract_parts(name):
    model = build_backbone(name, 5)
    blocks = list(model.blocks)
    assert len(blocks) == sum(hasattr(m, "post_mlp") for m in model.modules())  # `blocks` lists every block
    for blk in blocks:
        attn = blk.attn
        assert isinstance(blk.norm1, nn.LayerNorm) and isinstance(blk.norm2, nn.LayerNorm)
        assert isinstance(attn.qkv, nn.Linear) and attn.qkv.out_features == 3 * attn.qkv.in_features
        assert isinstance(attn.proj, nn.Linear) and attn.kv_prefix is None
        assert attn.num_heads * attn.head_dim == attn.qkv.in_features
    model.reset_classifier(9)
    assert isinstance(model.head, nn.Linear) and model(clip((1, 3, 8, 64, 64))).shape == (1, 9)


@pytest.mark.parametrize("name", MICRO)
def test_gradient_checkpointing_gives_the_same_gradients(name):
    torch.manual_seed(0)
    model = build_backbone(name, 5, drop_path_rate=0.3)  # recomputation must replay the same random drops
    x, target = clip((2, 3, 8, 64, 64)), torch.tensor([1, 3])

    def grads():
        torch.manual_seed(1)
        model.zero_grad()
        F.cross_entropy(model(x), target).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.set_grad_checkpointing(True)
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys()
    for n in plain:
        torch.testing.assert_close(checkpointed[n], plain[n], rtol=1e-5, atol=1e-6, msg=n)


def test_drop_path_and_head_drop_are_active_only_in_training():
    model = build_backbone("videoswin-micro", 5, drop_path_rate=0.5, head_drop=0.5)
    x = clip((2, 3, 8, 64, 64))
    with torch.no_grad():
        assert not torch.equal(model.train()(x), model(x))
        assert torch.equal(model.eval()(x), model(x))


class FixedKV(nn.Module):
    def __init__(self, k: torch.Tensor, v: torch.Tensor) -> None:
        super().__init__()
        self.k, self.v, self.rows = k, v, []

    def forward(self, n: int):
        self.rows.append(n)
        return self.k, self.v


@pytest.mark.parametrize("name", MICRO)
def test_empty_prefix_changes_nothing(name):
    model = build_backbone(name, 5).eval()
    x = clip((2, 3, 8, 64, 64))
    with torch.no_grad():
        before = model(x)
        for blk in model.blocks:
            empty = torch.zeros(1, blk.attn.num_heads, 0, blk.attn.head_dim)
            blk.attn.kv_prefix = FixedKV(empty, empty)
        torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)
    if name == "videoswin-micro":  # called with batch x windows rows: 2 x (2*4*4) windows in stage 1
        assert model.blocks[0].attn.kv_prefix.rows == [2 * 32]


def reference_attention(q, k, v, mask):
    """softmax(q k^T / sqrt(d) + mask) v written out."""
    logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    return (logits + mask).softmax(-1) @ v


def test_swin_prefix_columns_get_zero_bias_and_no_mask(monkeypatch):
    """Hand check on a shifted block: the prefix columns appended to K and V are not masked."""
    model = build_backbone("videoswin-micro", 5).eval()
    attn = model.layers[0].blocks[1].attn
    assert attn.shift == (1, 2, 2)
    heads, d, extra = attn.num_heads, attn.head_dim, 3
    attn.kv_prefix = FixedKV(torch.randn(1, heads, extra, d), torch.randn(1, heads, extra, d))
    seen, sdpa = {}, F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask):
        if k.shape[-2] > q.shape[-2]:  # the block with the prefix
            seen.update(q=q, k=k, v=v, mask=attn_mask)
        return sdpa(q, k, v, attn_mask=attn_mask)

    monkeypatch.setattr(videoswin.F, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        model(clip((1, 3, 8, 64, 64)))
    q, k, v, mask = seen["q"], seen["k"], seen["v"], seen["mask"]
    n = q.shape[-2]
    assert k.shape[-2] == n + extra and mask.shape[-1] == n + extra
    assert (mask[..., :n] < videoswin.MASK_VALUE / 2).any()  # shifted windows: some pairs are masked
    assert (mask[..., n:] == 0).all()  # prefix: zero bias, never masked
    torch.testing.assert_close(k[..., n:, :], attn.kv_prefix.k.expand_as(k[..., n:, :]))
    torch.testing.assert_close(F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               reference_attention(q, k, v, mask), rtol=1e-4, atol=1e-5)
    # every query, even one masked from most of its window, still sees every prefix token
    weights = (q @ k.transpose(-2, -1) * d**-0.5 + mask).softmax(-1)
    assert (weights[..., n:] > 1e-4).all()


def test_vit_prefix_is_attended_by_every_token():
    model = build_backbone("videomae-micro", 5).eval()
    attn = model.blocks[0].attn
    x = clip((2, 20, 64))
    pk, pv = torch.randn(2, attn.num_heads, 4, attn.head_dim), torch.randn(2, attn.num_heads, 4, attn.head_dim)
    with torch.no_grad():
        qkv = attn.qkv(x).view(2, 20, 3, 64) + torch.stack((attn.q_bias, torch.zeros(64), attn.v_bias))
        q, k, v = qkv.view(2, 20, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        out = reference_attention(q, torch.cat((k, pk), 2), torch.cat((v, pv), 2), 0.0)
        expected = attn.proj(out.transpose(1, 2).reshape(2, 20, 64))
        attn.kv_prefix = FixedKV(pk, pv)
        torch.testing.assert_close(attn(x), expected, rtol=1e-4, atol=1e-5)
    assert attn.kv_prefix.rows == [2]


def block_inputs(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Size, tuple]]:
    """(block, input shape, its token_layout.grid at that moment) for every block, in order."""
    seen, hooks = [], []
    for blk in model.blocks:
        hooks.append(blk.register_forward_pre_hook(
            lambda blk, args: seen.append((blk, args[0].shape, blk.token_layout.grid))))
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("name", BACKBONES.names())
def test_token_layout_round_trip_and_free_residual_slots_on_every_block(name):
    """The grid hook on every block of every registered backbone, at full size (shapes on the meta device,
    the exact round trip on CPU tensors of each block's input shape, extra tokens included)."""
    with torch.device("meta"):
        model = build_backbone(name, 3).eval()
        _, p, _ = token_size(model)
        seen = block_inputs(model, torch.empty(1, 3, 4, 96 // p * p, 112 // p * p))
    assert len(seen) == len(list(model.blocks))
    t, h, w = model.token_grid
    for i, (blk, shape, grid) in enumerate(seen):
        assert all(isinstance(getattr(blk, slot), nn.Identity) for slot in ("pre_attn", "post_attn", "post_mlp"))
        layout = blk.token_layout
        layout.grid = grid
        assert grid[0] == t and grid[1:] <= (h, w) and (i > 0 or grid == (t, h, w)), (i, grid)
        x = clip(tuple(shape), seed=i)
        extras = [0] if layout.channels_last else [0, 2]  # prompts come first in a sequence
        for extra in extras:
            stream = torch.cat((clip((shape[0], extra, shape[-1]), seed=99), x), 1) if extra else x
            g, kept = layout.to_grid(stream)
            assert g.shape[1:] == (shape[-1], *grid)
            assert g.numel() + (0 if kept is None else kept.numel()) == stream.numel()
            assert kept is None or kept.shape[1] == extra + layout.num_prefix_tokens
            assert torch.equal(layout.from_grid(g, kept), stream)


@pytest.mark.parametrize("name", ["videomae-micro", "videoswin-micro"])
def test_token_grid_follows_patch_embedding_and_patch_merging(name):
    """Grid position (t, h, w) holds the token of that position: the ViT's raster order (against the patch
    embedding plus positions), Swin's stage grids after patch merging with odd sizes padded."""
    model = build_backbone(name, 3).eval()
    x = clip((2, 3, 4, 48, 80) if name.startswith("videomae") else (2, 3, 4, 40, 56))
    inputs = {}
    for i, blk in enumerate(model.blocks):
        blk.register_forward_pre_hook(lambda blk, args, i=i: inputs.setdefault(i, args[0].clone()))
    with torch.no_grad():
        model(x)
        first, _ = model.blocks[0].token_layout.to_grid(inputs[0])
        if name.startswith("videomae"):
            embedded = model.patch_embed(x)  # (B, C, T', H', W')
            c, t, h, w = embedded.shape[1:]
            positions = model.position_table(t * h * w, x).t().reshape(c, t, h, w)
            torch.testing.assert_close(first, embedded + positions, rtol=0, atol=1e-6)
        else:
            torch.testing.assert_close(first, model.patch_embed(x).permute(0, 4, 1, 2, 3), rtol=0, atol=0)
            grids = [stage.token_layout.grid for stage in model.layers]
            assert grids == [(2, 10, 14), (2, 5, 7), (2, 3, 4), (2, 2, 2)]
            start = len(model.layers[0].blocks)
            merged, _ = model.layers[1].token_layout.to_grid(inputs[start])
            stage1_out = model.layers[0].blocks[-1](inputs[start - 1])
            manual = torch.cat([stage1_out[:, :, i::2, j::2] for j in (0, 1) for i in (0, 1)], -1)
            expected = model.layers[0].downsample.reduction(model.layers[0].downsample.norm(manual))
            torch.testing.assert_close(merged, expected.permute(0, 4, 1, 2, 3), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MICRO)
def test_residual_slots_see_the_stream_where_the_contract_says(name):
    model = build_backbone(name, 3).eval()
    blk = model.blocks[1]
    seen = {}

    class Record(nn.Module):
        def __init__(self, slot):
            super().__init__()
            self.slot = slot

        def forward(self, x):
            seen[self.slot] = x.clone()
            return x * 2.0

    before = {}
    blk.register_forward_pre_hook(lambda b, args: before.setdefault("x", args[0].clone()))
    for slot in ("pre_attn", "post_attn", "post_mlp"):
        setattr(blk, slot, Record(slot))
    with torch.no_grad():
        model(clip((1, 3, 4, 32, 48)))
        x = before["x"]
        torch.testing.assert_close(seen["pre_attn"], x)
        x = 2 * x
        x = x + layer_scale(blk, 1, blk.attn(blk.norm1(x)))
        torch.testing.assert_close(seen["post_attn"], x, rtol=1e-5, atol=1e-6)
        x = 2 * x
        torch.testing.assert_close(seen["post_mlp"], x + layer_scale(blk, 2, blk.mlp(blk.norm2(x))), rtol=1e-5, atol=1e-6)


def layer_scale(blk: nn.Module, branch: int, y: torch.Tensor) -> torch.Tensor:
    """A branch times the block's layer scale where the model has one (timm's `ls1`, BEiT / Eva's `gamma_1`)."""
    gamma = getattr(blk, f"gamma_{branch}", None)
    return getattr(blk, f"ls{branch}", nn.Identity())(y) if gamma is None else gamma * y
