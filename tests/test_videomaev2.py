"""VideoMAE V2: ViT-g/14 and the distilled ViT-S/B as VideoMAE at those sizes, loading the release's
files and mmaction2's converted ones, equal to transformers' VideoMAE (whose architecture is the
release's modeling_finetune.py: q/v biases, fixed sin-cos positions, mean pooling and fc_norm)."""
from __future__ import annotations

import pytest
import torch
from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEModel

import vidpeft
from fixtures.checkpoint_formats import hf_to_official_videomae, official_videomae_to_mmaction, randomize_, save_mm, save_official
from vidpeft.backbones import backbone_info, build_backbone

# the ViT-g/14 shape in small: patch 14, MLP ratio 48/11 (hidden 279 of 64)
G_SHAPE = dict(patch_size=14, mlp_ratio=48 / 11)
HF_MICRO = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=int(64 * 48 / 11),
                patch_size=14, image_size=56, num_frames=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch.manual_seed(0)
    hf = randomize_(VideoMAEForVideoClassification(VideoMAEConfig(num_labels=5, layer_norm_eps=1e-6,
                                                                  attn_implementation="eager", **HF_MICRO)), seed=1)
    x = torch.randn(2, 3, 4, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = hf(pixel_values=x.transpose(1, 2)).logits
    official = hf_to_official_videomae(hf.state_dict(), depth=2)
    d = tmp_path_factory.mktemp("videomaev2")
    files = {"release": save_official(official, d / "vit_g_hybrid_pt_1200e_k710_ft.pth", "module"),
             "mmaction2": save_mm(official_videomae_to_mmaction(official, num_tokens=2 * 4 * 4), d / "mm.pth")}
    return x, logits, files


@pytest.mark.parametrize("form, fmt", [("release", "VideoMAE fine-tuning (official release or vidpeft names)"),
                                       ("mmaction2", "mmaction2 VideoMAE")])
def test_g_shape_equals_transformers(reference, form, fmt):
    x, logits, files = reference
    model = build_backbone("videomae-micro", 5, **G_SHAPE).eval()
    report = vidpeft.load_pretrained(model, files[form])
    assert report.format == fmt and report.missing == [] and report.unexpected == []
    with torch.no_grad():
        assert (model(x) - logits).abs().max() <= 1e-5
    assert logits.abs().max() > 0.1


@pytest.mark.parametrize("size, hf, published", [
    ("s", dict(hidden_size=384, num_attention_heads=6, intermediate_size=1536), 22e6),  # VideoMAE V2: 22M / 87M / 1B
    ("b", dict(), 87e6),
    ("g", dict(hidden_size=1408, num_hidden_layers=40, num_attention_heads=16, intermediate_size=6144,
               patch_size=14), 1.01e9),
])
def test_sizes_match_transformers_and_the_published_counts(size, hf, published):
    with torch.device("meta"):
        ours = build_backbone(f"videomaev2-{size}", 400)
        theirs = VideoMAEModel(VideoMAEConfig(**hf))
    count = sum(p.numel() for n, p in ours.named_parameters() if not n.startswith("head."))
    assert count == sum(p.numel() for p in theirs.parameters()) + 2 * ours.num_features  # + fc_norm
    assert abs(count - published) / published < 0.02
    info = backbone_info(f"videomaev2-{size}")
    assert info.family == "videomae" and info.frames == 16 and info.input_size == 224
