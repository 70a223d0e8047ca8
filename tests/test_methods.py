"""Every method on both micro backbones, through the public API; exact counts at full size."""
from __future__ import annotations

import json
from copy import deepcopy

import pytest
import torch
import torch.nn.functional as F

import vidpeft
from vidpeft.backbones import micro_backbones
from vidpeft.backbones.videomae import sincos_table
from vidpeft.cli import params as params_cli
from vidpeft.methods import blocks, canonical_key
from vidpeft.methods.lora import LoRAQKV
from vidpeft.methods.patt import ParallelAttention

BACKBONES = micro_backbones()
METHODS = vidpeft.METHODS.names()
NUM_CLASSES = 5
# methods whose added tokens change the output at step 0 by design; every other is the identity
CHANGES_OUTPUT_AT_INIT = {"prefix", "vpt", "mona", "probe"}  # Mona keeps the reference's init; the probe pools anew
# methods that unfreeze backbone tensors: which ones (every other method trains only what it adds)
UNFROZEN = {
    "full": lambda model, name: True,
    "bitfit": lambda model, name: name.rsplit(".", 1)[-1] in ("bias", "q_bias", "v_bias",
                                                              "relative_position_bias_table"),
    "norm": lambda model, name: isinstance(model.get_submodule(name.rpartition(".")[0]), torch.nn.LayerNorm),
    "partial": lambda model, name: any(name.startswith(prefix) for prefix in last_block_and_final_norm(model)),
    "aim": lambda model, name: name == "temporal_embed",  # besides its adapters, the temporal embedding
}


def last_block_and_final_norm(model) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(list(blocks(model))[-1])] + ".", names[id(model.final_norm())] + "."]


def clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=BACKBONES)
def pretrained(request, tmp_path_factory):
    """A randomly initialised backbone saved as a plain state dict: the 'pretrained' weights."""
    torch.manual_seed(0)
    reference = vidpeft.build_model(request.param, "full", NUM_CLASSES)
    path = tmp_path_factory.mktemp("ckpt") / "pretrained.pth"
    torch.save(reference.state_dict(), path)
    return request.param, path, reference.eval()


def build(backbone: str, method: str, path, **options) -> torch.nn.Module:
    torch.manual_seed(1)
    # no stochastic depth: a dropped residual branch would leave its adapter without gradient
    try:
        model = vidpeft.build_model(backbone, method, NUM_CLASSES, backbone_options={"drop_path_rate": 0.0},
                                    **options)
    except ValueError as error:  # a method that cannot run on this backbone says so in attach
        assert "\n" not in str(error)
        pytest.skip(f"{method} on {backbone}: {error}")
    vidpeft.load_pretrained(model, path)
    return model.eval()


@pytest.mark.parametrize("method", METHODS)
def test_step0_output_and_structural_freezing(pretrained, method):
    backbone, path, reference = pretrained
    model = build(backbone, method, path)
    with torch.no_grad():
        expected, got = reference(clip()), model(clip())
    if method in CHANGES_OUTPUT_AT_INIT:
        assert (got - expected).abs().max() > 1e-6, "prefixes, prompts and Mona change the output at step 0"
    else:
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    head = [n for n in trainable if n.startswith("head.")]
    assert head == ["head.weight", "head.bias"]
    rest = [n for n in trainable if not n.startswith("head.")]
    added = set(model.vidpeft_added)
    assert added <= {canonical_key(n) for n in trainable}, "everything a method adds trains"
    unfrozen = [n for n in rest if canonical_key(n) not in added]
    if method == "linear":
        assert rest == []
    else:
        assert rest
        keep = UNFROZEN.get(method, lambda model, name: False)
        assert all(keep(model, n) for n in unfrozen), unfrozen
        assert {n for n, _ in model.named_parameters() if keep(model, n) and not n.startswith("head.")} == set(unfrozen)


@pytest.mark.parametrize("method", METHODS)
def test_training_steps_touch_only_trainable_tensors(pretrained, method):
    backbone, path, _ = pretrained
    model = build(backbone, method, path).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    labels = torch.tensor([1, 3])
    for step in range(2):  # zero-initialised up-projections: their inputs get gradient from step 2
        optimizer.zero_grad()
        F.cross_entropy(model(clip(step)), labels).backward()
        assert all(p.grad is not None for p in trainable)
        optimizer.step()
    # Known limit: on a model that classifies its class token (CLIP, ViT), Mona after the last block's
    # attention and MLP sees only patch tokens, which nothing reads any more: no gradient reaches it.
    last = f"blocks.{len(list(blocks(model))) - 1}.post_"
    dead_end = method == "mona" and getattr(getattr(model, "image", None), "global_pool", "") == "token"
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        if p.requires_grad and dead_end and last in name:
            assert p.grad.abs().max() == 0, name
        elif p.requires_grad:  # or got a gradient too small to move float32 weights (Mona's LN under s1 = 1e-6)
            assert changed or p.grad.abs().max() > 0, f"{name} is trainable but did not change"
        else:
            assert not changed and p.grad is None, f"{name} is frozen but changed"


@pytest.mark.parametrize("method", METHODS)
def test_adapter_round_trip(pretrained, method, tmp_path):
    backbone, path, _ = pretrained
    model = build(backbone, method, path)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
        expected = model(clip())
    vidpeft.save_adapter(model, tmp_path / "adapter", labels=[f"class {i}" for i in range(NUM_CLASSES)])
    spec = json.loads((tmp_path / "adapter" / "adapter.json").read_text())
    assert (spec["backbone"], spec["method"], spec["num_classes"]) == (backbone, method, NUM_CLASSES)
    assert spec["labels"][4] == "class 4"
    saved = (tmp_path / "adapter" / "adapter.safetensors").stat().st_size
    trainable_bytes = 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable_bytes <= saved < trainable_bytes + 64 * 1024  # trainable tensors only
    loaded = vidpeft.load_adapter(tmp_path / "adapter", pretrained=path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(clip()), expected)


@pytest.mark.parametrize("method", METHODS)
def test_load_report_lists_method_tensors_apart_from_missing_keys(pretrained, method):
    backbone, path, _ = pretrained
    model = build(backbone, method, path)
    report = vidpeft.load_pretrained(model, path)
    assert report.missing == [] and report.unexpected == [] and report.added == model.vidpeft_added
    if model.vidpeft_added:
        assert f"added by the method, initialised by it ({len(model.vidpeft_added)} tensors)" in str(report)


def test_lora_equals_dense_update():
    torch.manual_seed(0)
    model = vidpeft.build_model("videomae-micro", "lora", NUM_CLASSES, rank=4, alpha=8.0)
    wrapper = next(blocks(model)).attn.qkv
    assert isinstance(wrapper, LoRAQKV)
    with torch.no_grad():
        wrapper.lora_B.normal_()
    d, r = wrapper.dim, 4
    a_q, a_v = wrapper.lora_A[:r], wrapper.lora_A[r:]
    b_q, b_v = wrapper.lora_B[:d], wrapper.lora_B[d:]
    w = wrapper.base_layer.weight.detach().clone()
    w[:d] += 2.0 * b_q @ a_q  # scale = alpha / rank = 2
    w[2 * d:] += 2.0 * b_v @ a_v
    x = torch.randn(3, 7, d)
    with torch.no_grad():
        torch.testing.assert_close(wrapper(x), F.linear(x, w, wrapper.base_layer.bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_lora_merge_unmerge(backbone):
    torch.manual_seed(0)
    model = vidpeft.build_model(backbone, "lora", NUM_CLASSES).eval()
    with torch.no_grad():
        for block in blocks(model):
            block.attn.qkv.lora_B.normal_(std=0.1)
        weights = [block.attn.qkv.base_layer.weight.clone() for block in blocks(model)]
        expected = model(clip())
        vidpeft.merge_lora(model)
        wrappers = [block.attn.qkv for block in blocks(model)]
        assert all(isinstance(w, LoRAQKV) and w.merged for w in wrappers)
        for w, before in zip(wrappers, weights):
            torch.testing.assert_close(w.base_layer.weight, before + w.delta_weight(), rtol=0, atol=1e-6)
        torch.testing.assert_close(model(clip()), expected, rtol=1e-5, atol=1e-5)
        vidpeft.merge_lora(model)  # merging twice folds the update once
        torch.testing.assert_close(model(clip()), expected, rtol=1e-5, atol=1e-5)
        # the merged state lives on each wrapper, so a copy knows it is merged and unmerges exactly
        copy = deepcopy(model)
        assert all(block.attn.qkv.merged for block in blocks(copy))
        for m in (model, copy):
            vidpeft.unmerge_lora(m)
            assert not any(block.attn.qkv.merged for block in blocks(m))
            for block, w in zip(blocks(m), weights):
                torch.testing.assert_close(block.attn.qkv.base_layer.weight, w, rtol=0, atol=1e-6)
            torch.testing.assert_close(m(clip()), expected, rtol=1e-5, atol=1e-5)


def test_patt_equals_explicit_qkv_attention():
    torch.manual_seed(0)
    model = vidpeft.build_model("videomae-micro", "bapat", NUM_CLASSES, patt_init="benchmark").eval()
    attn = next(blocks(model)).attn
    branch = attn.qkv
    assert isinstance(branch, ParallelAttention) and branch.down.out_features == 32
    x = torch.randn(2, 10, branch.dim)
    d, h = branch.dim, attn.num_heads
    with torch.no_grad():
        q, k, v = F.linear(x, branch.base_layer.weight).split(d, dim=-1)
        q, v = q + attn.q_bias, v + attn.v_bias
        dk, dv = (0.8 * branch.up(torch.tanh(branch.down(x)))).split(d, dim=-1)
        k, v = k + dk, v + dv
        heads = [t.reshape(2, 10, h, d // h).transpose(1, 2) for t in (q, k, v)]
        weights = (heads[0] @ heads[1].transpose(-2, -1) / (d // h) ** 0.5).softmax(-1)
        expected = attn.proj((weights @ heads[2]).transpose(1, 2).reshape(2, 10, d))
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_patt_benchmark_init_changes_output_and_zero_init_does_not(pretrained):
    backbone, path, reference = pretrained
    with torch.no_grad():
        expected = reference(clip())
        assert not torch.allclose(build(backbone, "bapat", path, patt_init="benchmark")(clip()), expected, atol=1e-4)
        torch.testing.assert_close(build(backbone, "bapat", path)(clip()), expected, rtol=0, atol=1e-5)


def test_prefix_attention_equals_explicit_concatenation():
    torch.manual_seed(0)
    model = vidpeft.build_model("videomae-micro", "prefix", NUM_CLASSES, prefix_length=3).eval()
    attn = next(blocks(model)).attn
    x = torch.randn(2, 10, attn.num_heads * attn.head_dim)
    d, h = x.shape[-1], attn.num_heads
    with torch.no_grad():
        q, k, v = F.linear(x, attn.qkv.weight).split(d, dim=-1)
        q, v = q + attn.q_bias, v + attn.v_bias
        q, k, v = [t.reshape(2, 10, h, d // h).transpose(1, 2) for t in (q, k, v)]
        kp, vp = attn.kv_prefix(2)
        assert kp.shape[-2] == 3
        k, v = torch.cat([kp.expand(2, -1, -1, -1), k], 2), torch.cat([vp.expand(2, -1, -1, -1), v], 2)
        weights = (q @ k.transpose(-2, -1) / (d // h) ** 0.5).softmax(-1)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 10, d))
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_prefix_fold_gives_identical_outputs(backbone):
    torch.manual_seed(0)
    model = vidpeft.build_model(backbone, "prefix", NUM_CLASSES).eval()
    with torch.no_grad():
        expected = model(clip())
        vidpeft.fold_prefix(model)
        assert not any(p.requires_grad for n, p in model.named_parameters() if "kv_prefix" in n)
        assert not any(".mlp." in n for n, _ in model.named_parameters() if "kv_prefix" in n)
        torch.testing.assert_close(model(clip()), expected, rtol=0, atol=1e-6)


def test_bad_method_and_option_give_one_line_errors():
    with pytest.raises(KeyError, match="unknown method 'adaptor'.*choose one of.*adapter, adaptformer"):
        vidpeft.build_model("videomae-micro", "adaptor", NUM_CLASSES)
    with pytest.raises(TypeError, match="method 'lora' has no option adapter_dim"):
        vidpeft.build_model("videomae-micro", "lora", NUM_CLASSES, adapter_dim=8)
    with pytest.raises(ValueError, match="targets"):
        vidpeft.build_model("videomae-micro", "lora", NUM_CLASSES, targets=("q", "x"))


# ---------------------------------------------------------------- Adapter, VPT, NormTuning, Partial-k

def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x**3)))


@pytest.mark.parametrize("positions, wrapped", [(None, ("attn.proj", "mlp")), (("mlp",), ("mlp",))])
def test_adapter_is_serial_bottleneck_after_the_right_layers(positions, wrapped):
    options = {} if positions is None else {"adapter_positions": positions}
    torch.manual_seed(0)
    model = vidpeft.build_model("videoswin-micro", "adapter", NUM_CLASSES, adapter_dim=8, **options)
    for block in blocks(model):
        adapted = {name for name in ("attn.proj", "mlp") if hasattr(block.get_submodule(name), "adapter")}
        assert adapted == set(wrapped)
    block = list(blocks(model))[-1]
    wrapper = block.get_submodule(wrapped[0])
    down, up = wrapper.adapter.down, wrapper.adapter.up
    assert torch.count_nonzero(up.weight) == 0 and torch.count_nonzero(down.bias) == 0
    assert 0 < down.weight.abs().max() <= 2e-3  # adapter-bert: N(0, 1e-3) truncated at 2 std
    with torch.no_grad():
        up.weight.normal_(std=0.5)
        down.weight.normal_(std=0.5)
        x = torch.randn(3, 5, block.attn.num_heads * block.attn.head_dim)
        y = wrapper.base_layer(x)
        expected = y + F.linear(gelu_tanh(F.linear(y, down.weight, down.bias)), up.weight, up.bias)
        torch.testing.assert_close(wrapper(x), expected, rtol=1e-5, atol=1e-5)


def vit_tokens(model, x: torch.Tensor) -> torch.Tensor:
    """VideoMAE's embedded patch tokens, from its patch embedding and the sin-cos table."""
    tokens = model.patch_embed(x).flatten(2).transpose(1, 2)
    return tokens + sincos_table(tokens.shape[1], tokens.shape[2])


def test_vpt_deep_equals_concatenate_attend_drop():
    """Before every block, L fresh prompts are concatenated; the block runs on the longer sequence
    (plain attention, no prefix slot); the prompts' outputs are dropped; mean pool over patches."""
    torch.manual_seed(0)
    model = vidpeft.build_model("videomae-micro", "vpt", NUM_CLASSES, prompt_length=3).eval()
    x = clip()
    with torch.no_grad():
        got = model(x)
        tokens = vit_tokens(model, x)
        for block in model.blocks:
            provider, block.attn.kv_prefix = block.attn.kv_prefix, None
            prompts = provider.prompts.expand(len(x), -1, -1)
            tokens = block(torch.cat([prompts, tokens], dim=1))[:, 3:]
            block.attn.kv_prefix = provider
        expected = model.head(model.fc_norm(tokens.mean(1)))
        copied = deepcopy(model)  # each block's prompts keep pointing at that block, in the copy too
        assert copied.blocks[1].attn.kv_prefix.block is copied.blocks[1]
        torch.testing.assert_close(copied(x), got, rtol=0, atol=0)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_vpt_shallow_carries_prompts_through_every_block_and_pools_patches_only():
    torch.manual_seed(0)
    model = vidpeft.build_model("videomae-micro", "vpt", NUM_CLASSES, prompt_length=4, vpt_mode="shallow").eval()
    x = clip()
    with torch.no_grad():
        got = model(x)
        assert model.num_prefix_tokens == 4
        tokens = torch.cat([model.extra_tokens.prompts.expand(len(x), -1, -1), vit_tokens(model, x)], dim=1)
        for block in model.blocks:
            tokens = block(tokens)
        expected = model.head(model.fc_norm(tokens[:, 4:].mean(1)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def window_attention_with_prompts(attn, x: torch.Tensor, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VPT reference's PromptedWindowAttention, written out for (normalised) (B, T, H, W, C) inputs
    that tile into whole windows: clip windows as large as the grid (then unshifted), shift, cut
    windows, put the prompts first in every window, attend with the relative position bias and the
    shift mask (zero for prompt rows and columns), average the prompt rows over the windows, put the
    windows back, shift back. Returns (grid output, prompt output)."""
    b, t, h, w, c = x.shape
    window = [min(size, win) for size, win in zip((t, h, w), attn.window)]
    shift = [0 if size <= win else s for size, win, s in zip((t, h, w), attn.window, attn.shift)]
    (wt, wh, ww), heads, d = window, attn.num_heads, attn.head_dim
    n, length = wt * wh * ww, prompts.shape[1]
    shifted = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
    windows = shifted.view(b, t // wt, wt, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
    windows = windows.reshape(b, -1, n, c)
    num_windows = windows.shape[1]
    seq = torch.cat([prompts[:, None].expand(-1, num_windows, -1, -1), windows], dim=2).flatten(0, 1)
    q, k, v = attn.qkv(seq).view(len(seq), length + n, 3, heads, d).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) / d**0.5  # (rows, heads, L+N, L+N)
    full = attn.window  # the table is indexed for the configured window; a clipped window uses its first entries
    coords = torch.stack(torch.meshgrid(*(torch.arange(f) for f in full), indexing="ij")).flatten(1).T
    rel = coords[:, None] - coords[None] + torch.tensor([f - 1 for f in full])
    index = (rel[..., 0] * (2 * full[1] - 1) * (2 * full[2] - 1) + rel[..., 1] * (2 * full[2] - 1) + rel[..., 2])[:n, :n]
    bias = torch.zeros(heads, length + n, length + n)
    bias[:, length:, length:] = attn.relative_position_bias_table[index].permute(2, 0, 1)
    region = torch.zeros(t, h, w, dtype=torch.long)
    for axis, (size, win, s) in enumerate(zip((t, h, w), window, shift)):
        if s:
            bands = torch.zeros(size, dtype=torch.long)
            bands[size - win:size - s], bands[size - s:] = 1, 2
            region = region * 3 + bands.view([-1 if i == axis else 1 for i in range(3)])
    labels = region.view(t // wt, wt, h // wh, wh, w // ww, ww).permute(0, 2, 4, 1, 3, 5).reshape(-1, n)
    mask = torch.zeros(len(labels), length + n, length + n)
    mask[:, length:, length:] = (labels[:, :, None] != labels[:, None, :]).float() * -100.0
    logits = logits.view(b, num_windows, heads, length + n, length + n) + bias + mask[:, None]
    out = (logits.softmax(-1).flatten(0, 1) @ v).transpose(1, 2).reshape(b, num_windows, length + n, c)
    out = attn.proj(out)
    prompt_out = out[:, :, :length].mean(1)
    out = out[:, :, length:].reshape(b, t // wt, h // wh, w // ww, wt, wh, ww, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return torch.roll(out.reshape(b, t, h, w, c), shifts=shift, dims=(1, 2, 3)), prompt_out


def swin_with_prompts(model, x: torch.Tensor, shallow: torch.Tensor | None, deep: list | None) -> torch.Tensor:
    """The VPT reference's PromptedSwinTransformer forward, written out: prompts beside every block's
    tokens (replaced by a block's own deep prompts), residuals and MLP on both, patch merging of four
    prompt copies, final norm and mean over patches and prompts together."""
    grid = model.patch_embed(x)
    prompts = None if shallow is None else shallow.expand(len(x), -1, -1)
    i = 0
    for stage in model.layers:
        for block in stage.blocks:
            if deep is not None:
                prompts = deep[i].expand(len(x), -1, -1)
            i += 1
            attended, attended_prompts = window_attention_with_prompts(block.attn, block.norm1(grid), block.norm1(prompts))
            grid, prompts = grid + attended, prompts + attended_prompts
            grid, prompts = grid + block.mlp(block.norm2(grid)), prompts + block.mlp(block.norm2(prompts))
        if stage.downsample is not None:
            grid = stage.downsample(grid)
            merge = stage.downsample
            prompts = merge.reduction(merge.norm(torch.cat([prompts] * 4, dim=-1)))
    tokens = torch.cat([prompts, grid.flatten(1, 3)], dim=1)
    return model.head(model.norm(tokens).mean(1))


@pytest.mark.parametrize("mode", ["deep", "shallow"])
def test_vpt_on_swin_is_the_reference_prompted_swin(mode):
    torch.manual_seed(0)
    model = vidpeft.build_model("videoswin-micro", "vpt", NUM_CLASSES, prompt_length=3, vpt_mode=mode).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("relative_position_bias_table", "qkv.bias")) or "prompts" in name:
                p.normal_(std=1.0)  # biases and prompts that weigh in the attention
        x = clip()
        shallow = model.extra_tokens.prompts if mode == "shallow" else None
        deep = [block.extra_tokens.prompts for block in blocks(model)] if mode == "deep" else None
        expected = swin_with_prompts(model, x, shallow, deep)
        got = model(x)
        assert any(block.attn.shift != (0, 0, 0) for block in blocks(model))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        prompt_free = vidpeft.build_model("videoswin-micro", "linear", NUM_CLASSES)
        prompt_free.load_state_dict(model.state_dict(), strict=False)
        assert (prompt_free.eval()(x) - got).abs().max() > 1e-2  # the prompts do change the output


def test_vpt_shallow_needs_an_extra_token_slot():
    """A backbone without `extra_tokens` (here one built in the test) is refused in one line, not
    silently left without prompts."""
    backbone = torch.nn.Module()
    backbone.family, backbone.patch_embed = "toy", torch.nn.Module()
    backbone.patch_embed.proj = torch.nn.Conv3d(3, 8, (2, 4, 4))
    vpt = vidpeft.METHODS.get("vpt")
    with pytest.raises(ValueError, match=r"^vpt_mode=shallow needs a backbone with an extra-token slot .* toy has none"):
        vpt.attach(backbone, vpt.config(vpt_mode="shallow"))


def test_vpt_prompts_are_initialised_as_the_reference():
    model = vidpeft.build_model("videomae-b", "vpt", NUM_CLASSES, prompt_length=50)
    bound = (6 / (3 * 2 * 16 * 16 + 768)) ** 0.5  # uniform(-v, v), v from the patch fan-in and the width
    prompts = torch.stack([block.attn.kv_prefix.prompts for block in blocks(model)])
    assert prompts.abs().max() <= bound and prompts.abs().max() > 0.99 * bound
    assert abs(prompts.std().item() - bound / 3**0.5) < 0.02 * bound


@pytest.mark.parametrize("method, options, message", [
    ("vpt", {"vpt_mode": "wide"}, "vpt_mode must be one of deep, shallow"),
    ("adapter", {"adapter_positions": ("qkv",)}, "adapter_positions must be names among attn, mlp"),
    ("partial", {"partial_blocks": 3}, "partial_blocks=3, but this backbone has 2 blocks"),
    ("partial", {"partial_blocks": 0}, "partial_blocks must be >= 1"),
])
def test_bad_options_of_the_new_methods(method, options, message):
    with pytest.raises(ValueError, match=message):
        vidpeft.build_model("videomae-micro", method, NUM_CLASSES, **options)


# Parameter counts at full size, excluding the head (METHODS.md; the benchmark's figures in comments).
FULL_SIZE_COUNTS = {
    ("videoswin-b", "full"): 87_638_984,        # 87.64M
    ("videoswin-b", "linear"): 0,
    ("videoswin-b", "bitfit"): 1_090_376,       # 1.09M = 137,216 biases + 953,160 table entries
    ("videoswin-b", "lora"): 770_048,           # benchmark 0.75M
    ("videoswin-b", "adaptformer"): 1_553_664,  # 1.56M
    ("videoswin-b", "bapat"): 6_201_088,        # benchmark 6.18M
    ("videomae-b", "adaptformer"): 1_189_632,   # 1.19M
    ("videomae-b", "bapat"): 2_093_184,         # benchmark 2.06M
    ("videomae-b", "linear"): 0,
    ("videomae-b", "st-adapter"): 7_110_144,    # 12 x (2*768*384 + 5*384 + 768), the reference's 12x384
    ("videoswin-b", "st-adapter"): 7_021_696,   # widths d/2 = 64, 128, 256, 512 by stage: sum of d^2 + 3.5 d
    ("videomae-b", "mona"): 2_684_928,          # 24 modules x (133 d + 9,728)
    ("videoswin-b", "mona"): 3_667_456,         # 2 per block x (133 d + 9,728) over d = 128 x2 ... 1024 x2
    ("videomae-b", "adapter"): 2_379_264,       # Houlsby m=64: 24 x (2·64·768 + 64 + 768)
    ("videoswin-b", "adapter"): 3_107_328,      # V-PETL COCO table: Adapter 3.11M
    ("videomae-b", "norm"): 38_400,             # 25 LayerNorms x 2 x 768
    ("videoswin-b", "norm"): 57_600,            # Mona's table: NormTuning 0.06M
    ("videomae-b", "partial"): 7_087_104 + 2 * 768,     # last block + fc_norm
    ("videoswin-b", "partial"): 12_677_344 + 2 * 1024,  # last block + norm (Mona: 12.60M, image Swin-B)
    ("videomae-b", "vpt"): 12 * 10 * 768,       # deep, L = 10
    ("videoswin-b", "vpt"): 10 * 12032,         # deep: L x the sum of the 24 blocks' widths
}


@pytest.mark.parametrize("backbone,method", sorted(FULL_SIZE_COUNTS))
def test_full_size_parameter_counts(backbone, method, capsys):
    assert params_cli.main(["--backbone", backbone, "--method", method, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["trainable"] == FULL_SIZE_COUNTS[backbone, method]


def test_full_size_counts_of_the_other_rows(capsys):
    params_cli.main(["--backbone", "videomae-b", "--method", "full", "--json", "--num-classes", "400"])
    full = json.loads(capsys.readouterr().out)
    assert abs(full["trainable"] - 86.2e6) / 86.2e6 < 0.01 and full["head"] == 768 * 400 + 400
    params_cli.main(["--backbone", "videoswin-b", "--method", "bitfit", "--rel-pos-tables", "false", "--json"])
    assert json.loads(capsys.readouterr().out)["trainable"] == 137_216
    params_cli.main(["--backbone", "videomae-b", "--method", "adapter", "--adapter-dim", "8", "--adapter-positions",
                     "mlp", "--json"])
    assert json.loads(capsys.readouterr().out)["trainable"] == 156_768  # Pfeiffer m=8 (V-PETL VTAB: 0.16M)
    params_cli.main(["--backbone", "videoswin-b", "--method", "adapter", "--adapter-dim", "8", "--adapter-positions",
                     "mlp", "--json"])
    assert json.loads(capsys.readouterr().out)["trainable"] == 204_736
    params_cli.main(["--backbone", "videomae-b", "--method", "vpt", "--vpt-mode", "shallow", "--prompt-length",
                     "50", "--json"])
    assert json.loads(capsys.readouterr().out)["trainable"] == 50 * 768
    params_cli.main(["--backbone", "videoswin-b", "--method", "vpt", "--vpt-mode", "shallow", "--json"])
    assert json.loads(capsys.readouterr().out)["trainable"] == 10 * 128  # at the first stage's width
    params_cli.main(["--backbone", "videoswin-b", "--method", "prefix", "--json"])
    assert json.loads(capsys.readouterr().out)["trainable"] == 16 * 12032 + 3 * 128 * 12032 + 128 * 24 + 2 * 12032


def test_params_cli_rejects_unknown_method(capsys):
    assert params_cli.main(["--backbone", "videoswin-b", "--method", "nope"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_canonical_key_strips_wrappers():
    assert canonical_key("blocks.0.attn.qkv.base_layer.weight") == "blocks.0.attn.qkv.weight"


def test_adapter_without_checkpoint_rebuilds_the_same_frozen_weights(tmp_path):
    """No pretrained file: the init seed in adapter.json recreates the frozen random backbone."""
    model = vidpeft.build_model("videoswin-micro", "adaptformer", NUM_CLASSES, seed=7).eval()
    with torch.no_grad():
        for block in blocks(model):
            block.mlp.adapter.up.weight.normal_(std=0.1)
        expected = model(clip())
    vidpeft.save_adapter(model, tmp_path)
    torch.manual_seed(123)  # the global RNG state must not matter
    with torch.no_grad():
        assert torch.equal(vidpeft.load_adapter(tmp_path).eval()(clip()), expected)
