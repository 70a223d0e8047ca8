"""VideoPrism: equal to transformers' VideoPrismVisionModel on the same weights, read from transformers'
files (a save_pretrained directory, a pytorch_model.bin directory, the state dict of a
VideoPrismForVideoClassification and of a VideoPrismClipModel, the LvT video-text model), at the
configured grid and at another one (transformers' interpolate_pos_encoding=True); the full sizes
against transformers' parameter counts and the release's."""
from __future__ import annotations

import pytest
import torch
from transformers import (
    VideoPrismClipModel, VideoPrismConfig, VideoPrismForVideoClassification, VideoPrismVisionConfig,
    VideoPrismVisionModel,
)

import vidpeft
from fixtures.checkpoint_formats import randomize_, save_hf_directory
from vidpeft.backbones import backbone_info, build_backbone

SIDE, FRAMES, CAP = 64, 8, 5.0
# the micro configuration; a logit cap of 5 (the release's is 50) so that the cap changes most logits
MICRO = dict(image_size=SIDE, num_frames=FRAMES, tubelet_size=[1, 16, 16], hidden_size=64, num_attention_heads=2,
             intermediate_size=256, num_spatial_layers=2, num_temporal_layers=2, attn_logit_softcapping=CAP)


def clip(shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg = VideoPrismVisionConfig(attn_implementation="eager", **MICRO)
    torch.manual_seed(1)
    hf = randomize_(VideoPrismVisionModel(cfg), seed=1)
    d = tmp_path_factory.mktemp("videoprism")
    classifier = VideoPrismForVideoClassification(VideoPrismVisionConfig(num_labels=3, **MICRO))
    classifier.vision_model.load_state_dict(hf.state_dict())
    torch.save(classifier.state_dict(), d / "classifier.pth")
    text = dict(vocab_size=50, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2)
    lvt = VideoPrismClipModel(VideoPrismConfig(vision_config=MICRO, text_config=text))
    lvt.video_model.vision_model.load_state_dict(hf.state_dict())
    torch.save(lvt.state_dict(), d / "lvt.pth")
    (d / "bin").mkdir()
    files = {"safetensors": save_hf_directory(hf, d / "hf", safetensors=True),
             "bin": save_hf_directory(hf, d / "bin", safetensors=False),
             "classifier": d / "classifier.pth", "lvt": d / "lvt.pth"}
    return hf, files


def tokens_of(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our final-norm tokens in transformers' order (B, T·H·W, C), and the pooled feature."""
    seen = {}
    hook = model.norm.register_forward_hook(lambda m, args, out: seen.setdefault("tokens", out))
    with torch.no_grad():
        features = model.forward_features(x)
    hook.remove()
    t, h, w = model.token_grid
    tokens = seen["tokens"].view(x.shape[0], h * w, t, -1).transpose(1, 2).reshape(x.shape[0], t * h * w, -1)
    return tokens, features


@pytest.mark.parametrize("form", ["safetensors", "bin", "classifier", "lvt"])
def test_equal_to_transformers_on_the_same_weights(reference, form):
    hf, files = reference
    model = build_backbone("videoprism-micro", 5, logit_cap=CAP).eval()
    report = vidpeft.load_pretrained(model, files[form])
    assert report.format == "Hugging Face transformers VideoPrism"
    assert report.unexpected == [] and report.missing == ["head.bias", "head.weight"]
    x = clip((2, 3, FRAMES, SIDE, SIDE))
    with torch.no_grad():
        expected = hf(x.transpose(1, 2)).last_hidden_state  # transformers takes (B, T, C, H, W)
    tokens, features = tokens_of(model, x)
    diff = (tokens - expected).abs().max().item()
    print(f"videoprism-micro vs transformers VideoPrismVisionModel ({form}): max abs diff {diff:.2e}")
    assert expected.abs().max() > 0.1 and diff <= 1e-5
    assert (features - expected.mean(1)).abs().max() <= 1e-5


def test_other_clip_lengths_and_frame_sizes_resize_the_tables_as_transformers(reference):
    hf, files = reference
    model = build_backbone("videoprism-micro", 5, logit_cap=CAP).eval()
    vidpeft.load_pretrained(model, files["safetensors"])
    x = clip((1, 3, 4, 48, 80), seed=3)
    with torch.no_grad():
        expected = hf(x.transpose(1, 2), interpolate_pos_encoding=True).last_hidden_state
    tokens, _ = tokens_of(model, x)
    assert model.token_grid == (4, 3, 5)
    assert (tokens - expected).abs().max() <= 1e-5


def test_the_logit_cap_is_applied(reference):
    """The same weights without the cap give other tokens: the equality above depends on it."""
    _, files = reference
    uncapped = build_backbone("videoprism-micro", 5, logit_cap=1e9).eval()
    capped = build_backbone("videoprism-micro", 5, logit_cap=CAP).eval()
    for model in (uncapped, capped):
        vidpeft.load_pretrained(model, files["safetensors"])
    x = clip((1, 3, FRAMES, SIDE, SIDE))
    assert (tokens_of(uncapped, x)[0] - tokens_of(capped, x)[0]).abs().max() > 1e-2


@pytest.mark.parametrize("size, hf, published", [
    ("b", dict(), 114e6),  # google-deepmind/videoprism README, released models: VideoPrism-B 114M, -L 354M
    ("l", dict(hidden_size=1024, num_attention_heads=16, intermediate_size=4096, num_spatial_layers=24,
               num_frames=8), 354e6),
])
def test_full_sizes_match_transformers(size, hf, published, capsys):
    with torch.device("meta"):
        ours = build_backbone(f"videoprism-{size}", 400)
        theirs = VideoPrismVisionModel(VideoPrismVisionConfig(**hf))
    count = sum(p.numel() for n, p in ours.named_parameters() if not n.startswith("head."))
    hf_count = sum(p.numel() for p in theirs.parameters())
    with capsys.disabled():
        print(f"videoprism-{size}: vidpeft {count:,}, transformers {hf_count:,}, published {published / 1e6:.0f}M")
    assert count == hf_count
    assert abs(count - published) / published < 0.01
    info = backbone_info(f"videoprism-{size}")
    assert (info.input_size, info.frames, info.mean, info.std) == (288, hf.get("num_frames", 16), (0, 0, 0), (1, 1, 1))


def test_both_stages_see_the_same_token_grid():
    """Grid position (t, h, w) holds that token in both stages (what ST-Adapter, Mona and the probe read):
    the first spatial block's grid is the patch embedding plus the spatial table; the first temporal
    block's grid is the spatial stage's output grid, normalised, plus the temporal table of frame t."""
    model = build_backbone("videoprism-micro", 3).eval()
    spatial, temporal = model.spatial_blocks, model.temporal_blocks
    seen = {}
    spatial[0].register_forward_pre_hook(lambda m, args: seen.setdefault("spatial_in", args[0]))
    spatial[-1].register_forward_hook(lambda m, args, out: seen.setdefault("spatial_out", out))
    temporal[0].register_forward_pre_hook(lambda m, args: seen.setdefault("temporal_in", args[0]))
    x = clip((2, 3, 4, 48, 80), seed=5)
    with torch.no_grad():
        model(x)
        c, t, h, w = 64, 4, 3, 5
        embedded = model.patch_embed(x) + model.spatial_table(h, w).transpose(1, 2).reshape(1, c, 1, h, w)
        first, _ = spatial[0].token_layout.to_grid(seen["spatial_in"])
        torch.testing.assert_close(first, embedded, rtol=0, atol=1e-6)
        out, _ = spatial[-1].token_layout.to_grid(seen["spatial_out"])
        expected = model.spatial_norm(out.movedim(1, -1)) + model.temporal_table(t)[0][:, None, None]
        got, kept = temporal[0].token_layout.to_grid(seen["temporal_in"])
        assert got.shape == (2, c, t, h, w) and kept.shape[1] == 0
        torch.testing.assert_close(got, expected.movedim(-1, 1), rtol=0, atol=1e-6)
