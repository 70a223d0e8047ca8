"""V-JEPA 2: equal to transformers' VJEPA2Model on the same weights, in both checkpoint forms (the
release's .pt and a transformers directory), and the full sizes against transformers' parameter counts."""
from __future__ import annotations

import pytest
import torch
from transformers import VJEPA2Config, VJEPA2Model

import vidpeft
from fixtures.checkpoint_formats import randomize_, save_hf_directory
from vidpeft.backbones import backbone_info, build_backbone

MICRO = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)  # head_dim 32: 30 channels rotate, 2 do not
SIDE, FRAMES = 64, 8


def clip(shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def hf_vjepa2(seed: int = 1) -> VJEPA2Model:
    cfg = VJEPA2Config(crop_size=SIDE, frames_per_clip=FRAMES, pred_hidden_size=32, pred_num_attention_heads=2,
                       pred_num_hidden_layers=1, attn_implementation="eager", **MICRO)
    torch.manual_seed(seed)
    return randomize_(VJEPA2Model(cfg), seed=seed)


def release_encoder(hf: VJEPA2Model) -> dict[str, torch.Tensor]:
    """The release's encoder names (src/models/vision_transformer.py, use_rope=True) under the
    `module.backbone.` prefix of its training wrapper, written out from transformers' names."""
    enc = hf.encoder
    out = {"patch_embed.proj.weight": enc.embeddings.patch_embeddings.proj.weight,
           "patch_embed.proj.bias": enc.embeddings.patch_embeddings.proj.bias,
           "norm.weight": enc.layernorm.weight, "norm.bias": enc.layernorm.bias}
    for i, layer in enumerate(enc.layer):
        a = layer.attention
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([a.query.weight, a.key.weight, a.value.weight])
        out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([a.query.bias, a.key.bias, a.value.bias])
        for ours, theirs in (("attn.proj", a.proj), ("norm1", layer.norm1), ("norm2", layer.norm2),
                             ("mlp.fc1", layer.mlp.fc1), ("mlp.fc2", layer.mlp.fc2)):
            out[f"blocks.{i}.{ours}.weight"], out[f"blocks.{i}.{ours}.bias"] = theirs.weight, theirs.bias
    return {f"module.backbone.{k}": v.detach().clone() for k, v in out.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    hf = hf_vjepa2()
    x = clip((2, 3, FRAMES, SIDE, SIDE))
    with torch.no_grad():
        tokens = hf.get_vision_features(x.transpose(1, 2))  # transformers takes (B, T, C, H, W)
    d = tmp_path_factory.mktemp("vjepa2")
    other = release_encoder(hf_vjepa2(seed=2))  # the online encoder: not what the probes read
    release = {"encoder": other, "target_encoder": release_encoder(hf), "predictor": {"module.backbone.x": torch.ones(1)},
               "epoch": 10, "loss": 0.5, "lr": 1e-4}
    torch.save(release, d / "vitl.pt")
    return hf, x, tokens, {"hf": save_hf_directory(hf, d / "hf", safetensors=True), "release": d / "vitl.pt"}


@pytest.mark.parametrize("form, fmt", [("hf", "Hugging Face transformers V-JEPA 2"),
                                       ("release", "official V-JEPA 2 encoder")])
def test_equal_to_transformers_on_the_same_weights(reference, form, fmt):
    hf, x, tokens, files = reference
    model = build_backbone("vjepa2-micro", 5).eval()
    report = vidpeft.load_pretrained(model, files[form])
    assert report.format == fmt and report.unexpected == [] and report.missing == ["head.bias", "head.weight"]
    seen = {}
    model.norm.register_forward_hook(lambda m, args, out: seen.setdefault("tokens", out))
    with torch.no_grad():
        features = model.forward_features(x)
    assert tokens.abs().max() > 0.1
    assert (seen["tokens"] - tokens).abs().max() <= 1e-5
    assert (features - tokens.mean(1)).abs().max() <= 1e-5


def test_any_frame_count_and_frame_size_rotates_by_the_grid(reference):
    """Positions come from this forward's grid: at the configured size the result is transformers'; on
    another size each block still equals attention with the rotation written out from the grid."""
    hf, x, _, files = reference
    model = build_backbone("vjepa2-micro", 5).eval()
    vidpeft.load_pretrained(model, files["hf"])
    attn = model.blocks[0].attn
    y = clip((1, 3, 4, 48, 80), seed=3)
    inputs = {}
    model.blocks[0].register_forward_pre_hook(lambda m, args: inputs.setdefault("x", args[0]))
    with torch.no_grad():
        model(y)
        t, h, w = model.token_grid
        assert (t, h, w) == (2, 3, 5)
        stream = model.blocks[0].norm1(inputs["x"])
        q, k, v = attn.project(stream)
        d = 2 * ((attn.head_dim // 3) // 2)
        ids = torch.arange(t * h * w)
        axes = (ids // (h * w), (ids % (h * w)) // w, ids % w)

        def rotate(z):  # the release's rotate_queries_or_keys on each of the three slices
            parts = []
            for i, pos in enumerate(axes):
                zi = z[..., i * d:(i + 1) * d]
                omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float32) / (d / 2.0))
                freq = pos[:, None].float() * omega
                sin, cos = freq.sin().repeat(1, 2), freq.cos().repeat(1, 2)
                y1, y2 = zi.unflatten(-1, (-1, 2)).unbind(-1)
                parts.append(zi * cos + torch.stack((-y2, y1), -1).flatten(-2) * sin)
            return torch.cat(parts + [z[..., 3 * d:]], -1)

        q, k = rotate(q), rotate(k)
        weights = (q @ k.transpose(-2, -1) * attn.head_dim**-0.5).softmax(-1)
        expected = attn.proj((weights @ v).transpose(1, 2).reshape(1, t * h * w, -1))
        torch.testing.assert_close(attn(stream), expected, rtol=1e-5, atol=1e-5)


def test_release_prefers_the_target_encoder(reference):
    hf, _, _, files = reference
    model = build_backbone("vjepa2-micro", 5)
    vidpeft.load_pretrained(model, files["release"])
    assert torch.equal(model.norm.weight, hf.encoder.layernorm.weight)


@pytest.mark.parametrize("size, hf, published", [
    ("l", dict(), 300e6),  # V-JEPA 2 README: ViT-L/16 300M, ViT-H/16 600M, ViT-g/16 1B
    ("h", dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16), 600e6),
    ("g", dict(hidden_size=1408, num_hidden_layers=40, num_attention_heads=22, mlp_ratio=48 / 11), 1e9),
])
def test_full_sizes_match_transformers(size, hf, published):
    with torch.device("meta"):
        ours = build_backbone(f"vjepa2-{size}", 400)
        theirs = VJEPA2Model(VJEPA2Config(**hf)).encoder
    count = sum(p.numel() for n, p in ours.named_parameters() if not n.startswith("head."))
    assert count == sum(p.numel() for p in theirs.parameters())
    assert abs(count - published) / published < 0.06
    assert backbone_info(f"vjepa2-{size}").input_size == 256 and backbone_info("vjepa2-g-384").input_size == 384
