"""load_pretrained on every supported checkpoint format, proven by logits equal to the reference
implementations (transformers' VideoMAE, torchvision's swin3d) that produced the weights."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torchvision
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

import vidpeft
from fixtures.checkpoint_formats import (
    hf_to_official_videomae,
    official_swin_to_mmaction,
    official_videomae_to_mmaction,
    official_videomae_to_pretrain,
    randomize_,
    save_hf_directory,
    save_mm,
    save_official,
    torchvision_to_official_swin,
)
from vidpeft import load_pretrained  # the public API (a thin layer over vidpeft.backbones.checkpoints)
from vidpeft.backbones import build_backbone

NUM_CLASSES = 5


def clip(shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def assert_same_logits(ours: torch.Tensor, reference: torch.Tensor, min_scale: float = 0.1) -> None:
    """float32 parity: max abs difference <= 1e-4 of the logit (or gradient) scale."""
    scale = reference.abs().max().item()
    assert scale > min_scale, "reference values are too small for a meaningful comparison"
    assert (ours - reference).abs().max().item() <= 1e-4 * scale


def logits_of(backbone: str, path: Path, x: torch.Tensor, num_classes: int = NUM_CLASSES, **kw):
    torch.manual_seed(123)  # a head or tensor that failed to load would keep this random init
    model = build_backbone(backbone, num_classes, **kw).eval()
    report = load_pretrained(model, path)
    with torch.no_grad():
        return model(x), report


def hf_videomae(size: int, frames: int, **config) -> VideoMAEForVideoClassification:
    cfg = VideoMAEConfig(image_size=size, num_frames=frames, num_labels=NUM_CLASSES, layer_norm_eps=1e-6,
                         attn_implementation="eager", **config)
    torch.manual_seed(0)
    return randomize_(VideoMAEForVideoClassification(cfg), seed=1)


MICRO_VIT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256)


@pytest.fixture(scope="module")
def videomae_ref(tmp_path_factory):
    """transformers' VideoMAE with random weights (q/v biases non-zero) in every VideoMAE format."""
    hf = hf_videomae(64, 8, **MICRO_VIT)
    x = clip((2, 3, 8, 64, 64))
    with torch.no_grad():
        reference = hf(pixel_values=x.transpose(1, 2)).logits  # transformers takes (B, T, C, H, W)
    d = tmp_path_factory.mktemp("videomae")
    official = hf_to_official_videomae(hf.state_dict(), depth=2)
    files = {
        "hf-safetensors-dir": save_hf_directory(hf, d / "hf_st", safetensors=True),
        "hf-bin-file": save_hf_directory(hf, d / "hf_bin", safetensors=False) / "pytorch_model.bin",
        "official-model": save_official(official, d / "vit_micro_ft.pth", "model"),
        "official-module": save_official(official, d / "checkpoint-best.pth", "module"),
        "mmaction2": save_mm(official_videomae_to_mmaction(official, num_tokens=64), d / "mm.pth"),
    }
    return hf, x, reference, official, files, d


@pytest.mark.parametrize("fmt, expected", [
    ("hf-safetensors-dir", "Hugging Face transformers VideoMAE"),
    ("hf-bin-file", "Hugging Face transformers VideoMAE"),
    ("official-model", "VideoMAE fine-tuning (official release or vidpeft names)"),
    ("official-module", "VideoMAE fine-tuning (official release or vidpeft names)"),
    ("mmaction2", "mmaction2 VideoMAE"),
])
def test_videomae_formats_match_transformers(videomae_ref, fmt, expected):
    hf, x, reference, _, files, _ = videomae_ref
    ours, report = logits_of("videomae-micro", files[fmt], x)
    assert report.format == expected
    assert report.missing == [] and report.unexpected == [] and report.reinitialised == []
    assert_same_logits(ours, reference)


def test_videomae_qv_biases_really_load(videomae_ref):
    hf, _, _, _, files, _ = videomae_ref
    model = build_backbone("videomae-micro", NUM_CLASSES)
    load_pretrained(model, files["hf-safetensors-dir"])
    q_bias = hf.videomae.encoder.layer[1].attention.attention.query.bias
    assert q_bias.abs().min() > 0
    torch.testing.assert_close(model.blocks[1].attn.q_bias, q_bias, rtol=0, atol=0)
    torch.testing.assert_close(model.blocks[1].attn.v_bias, hf.videomae.encoder.layer[1].attention.attention.value.bias,
                               rtol=0, atol=0)


def test_videomae_pretraining_checkpoint_drops_decoder(videomae_ref):
    hf, x, reference, official, _, d = videomae_ref
    path = save_official(official_videomae_to_pretrain(official, dim=64), d / "pretrain.pth", "model")
    torch.manual_seed(0)
    model = build_backbone("videomae-micro", NUM_CLASSES).eval()
    report = load_pretrained(model, path)
    assert report.format == "official VideoMAE pre-training"
    assert report.missing == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert report.unexpected == ["norm.bias", "norm.weight"]  # the pre-training encoder's final norm
    assert "fc_norm.weight" in str(report)
    # with the fine-tuning pieces put back, the encoder gives transformers' logits
    model.fc_norm.load_state_dict(hf.fc_norm.state_dict())
    model.head.load_state_dict(hf.classifier.state_dict())
    with torch.no_grad():
        assert_same_logits(model(x), reference)


@pytest.fixture(scope="module")
def swin_ref(tmp_path_factory):
    """torchvision swin3d_t with random weights in the torchvision, official and mmaction2 formats."""
    torch.manual_seed(0)
    tv = randomize_(torchvision.models.video.swin3d_t(num_classes=NUM_CLASSES), seed=2)
    x = clip((2, 3, 8, 64, 96))  # 16x24 tokens: windows are padded, clipped and shifted
    with torch.no_grad():
        reference = tv(x)
    d = tmp_path_factory.mktemp("swin")
    official = torchvision_to_official_swin(tv.state_dict())
    torch.save(tv.state_dict(), d / "swin3d_t.pth")
    files = {
        "torchvision": d / "swin3d_t.pth",
        "official": save_mm(official, d / "swin_tiny_patch244_window877_kinetics400_1k.pth"),
        "mmaction2": save_mm(official_swin_to_mmaction(official), d / "mm_swin.pth"),
    }
    return x, reference, files


@pytest.mark.parametrize("fmt, expected", [
    ("torchvision", "torchvision swin3d"),
    ("official", "Video Swin (official release or vidpeft names)"),
    ("mmaction2", "mmaction2 Video Swin"),
])
def test_videoswin_formats_match_torchvision(swin_ref, fmt, expected):
    x, reference, files = swin_ref
    ours, report = logits_of("videoswin-t", files[fmt], x)
    assert report.format == expected
    assert report.missing == [] and report.unexpected == []
    assert_same_logits(ours, reference)


@pytest.mark.parametrize("bias_tables_trainable", [True, False])
def test_videoswin_gradients_match_torchvision(swin_ref, bias_tables_trainable):
    """Backward parity, for full fine-tuning (the bias tables train: SDPA's math path) and for
    the methods that freeze them (SDPA's fused kernel): input gradients and bias-table gradients
    of an unshifted and a shifted block equal torchvision's."""
    x, _, files = swin_ref
    tv = torchvision.models.video.swin3d_t(num_classes=NUM_CLASSES)
    tv.load_state_dict(torch.load(files["torchvision"], weights_only=True))
    ours = build_backbone("videoswin-t", NUM_CLASSES)
    load_pretrained(ours, files["torchvision"])
    tables = {  # torchvision's name -> ours
        f"features.{2 * stage}.{block}.attn.relative_position_bias_table":
            f"layers.{stage}.blocks.{block}.attn.relative_position_bias_table"
        for stage in (0, 2) for block in (0, 1)
    }
    grads = []
    for model in (tv.eval(), ours.eval()):
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.requires_grad_(bias_tables_trainable)
        inp = x.clone().requires_grad_(True)
        model(inp).square().sum().backward()
        params = dict(model.named_parameters())
        grads.append((inp.grad, params))
    (tv_x, tv_params), (our_x, our_params) = grads
    assert_same_logits(our_x, tv_x, min_scale=1e-6)
    for tv_name, our_name in tables.items():
        if bias_tables_trainable:
            assert_same_logits(our_params[our_name].grad, tv_params[tv_name].grad, min_scale=1e-6)
        else:
            assert our_params[our_name].grad is None


@pytest.mark.slow
def test_full_size_videomae_b_matches_transformers(tmp_path):
    hf = hf_videomae(224, 16)  # ViT-B defaults
    x = clip((1, 3, 16, 224, 224))
    with torch.no_grad():
        reference = hf(pixel_values=x.transpose(1, 2)).logits
    save_hf_directory(hf, tmp_path, safetensors=True)
    del hf
    ours, report = logits_of("videomae-b", tmp_path, x)
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == 12 * 13 + 6
    assert_same_logits(ours, reference)


@pytest.mark.slow
def test_full_size_videoswin_b_matches_torchvision(tmp_path):
    torch.manual_seed(0)
    tv = randomize_(torchvision.models.video.swin3d_b(num_classes=NUM_CLASSES), seed=3)
    x = clip((1, 3, 8, 224, 224))
    with torch.no_grad():
        reference = tv(x)
    path = save_mm(torchvision_to_official_swin(tv.state_dict()), tmp_path / "swin_base.pth")
    del tv
    ours, report = logits_of("videoswin-b", path, x)
    assert report.missing == [] and report.unexpected == []
    assert_same_logits(ours, reference)


# ---------------------------------------------------------------- errors and reports

def test_other_class_count_reinitialises_head(videomae_ref):
    _, x, _, official, files, _ = videomae_ref
    model = vidpeft.build_model("videomae-micro", "full", num_classes=7)
    report = load_pretrained(model, files["official-model"])
    assert report.reinitialised == ["head.bias", "head.weight"]
    assert report.missing == [] and report.unexpected == []
    assert "reinitialised (2): head.bias, head.weight" in str(report)
    torch.testing.assert_close(model.blocks[0].attn.qkv.weight, official["blocks.0.attn.qkv.weight"])
    assert model(x).shape == (2, 7)


def test_shape_mismatch_names_the_key(videomae_ref):
    _, _, _, _, files, _ = videomae_ref
    model = build_backbone("videomae-micro", NUM_CLASSES, mlp_ratio=2.0)
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp\.fc1\.(weight|bias) has shape \(256"):
        load_pretrained(model, files["official-model"])


def test_family_mismatch_is_an_error(swin_ref):
    _, _, files = swin_ref
    with pytest.raises(ValueError, match="a videoswin checkpoint .* cannot load into a videomae model"):
        load_pretrained(build_backbone("videomae-micro", NUM_CLASSES), files["official"])


def test_unrecognised_checkpoint_is_a_clear_error(tmp_path):
    torch.save({"state_dict": {"conv1.weight": torch.zeros(8, 3, 3, 3)}}, tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match=r"resnet\.pth: unrecognised checkpoint \(keys like conv1\.weight\)"):
        load_pretrained(build_backbone("videomae-micro", NUM_CLASSES), tmp_path / "resnet.pth")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.pth: not a readable PyTorch checkpoint"):
        load_pretrained(build_backbone("videomae-micro", NUM_CLASSES), tmp_path / "notes.pth")
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor pytorch_model.bin"):
        load_pretrained(build_backbone("videomae-micro", NUM_CLASSES), tmp_path)


class Payload:
    """Pickles to a call that creates a file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_checkpoint_with_code_is_refused(videomae_ref, tmp_path):
    _, _, _, official, _, _ = videomae_ref
    marker = tmp_path / "pwned"
    torch.save({"model": official, "extra": Payload(marker)}, tmp_path / "evil.pth", pickle_protocol=2)
    with pytest.raises(ValueError, match=r"evil\.pth: refused to load"):
        load_pretrained(build_backbone("videomae-micro", NUM_CLASSES), tmp_path / "evil.pth")
    assert not marker.exists()
    # the same payload does run under plain pickle: the test would catch a loader that executes it
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("backbone, fmt", [("videomae-micro", "official-model"), ("videoswin-t", "official")])
def test_loads_into_a_method_wrapped_model(videomae_ref, swin_ref, backbone, fmt):
    """`.base_layer` (peft's name for a wrapped module) is ignored, so LoRA models load backbone weights."""
    files = videomae_ref[4] if backbone.startswith("videomae") else swin_ref[2]
    model = vidpeft.build_model(backbone, "lora", num_classes=NUM_CLASSES)
    assert any(".qkv.base_layer." in k for k in model.state_dict())
    report = load_pretrained(model, files[fmt])
    assert report.unexpected == [] and report.reinitialised == []
    assert report.missing == [] and report.added and all("lora_" in k for k in report.added)
    plain = build_backbone(backbone, NUM_CLASSES)
    load_pretrained(plain, files[fmt])
    torch.testing.assert_close(model.blocks[1].attn.qkv.base_layer.weight, plain.blocks[1].attn.qkv.weight)


def test_a_vidpeft_full_run_is_one_more_checkpoint_format(tmp_path):
    """save_adapter of a full fine-tuning (what vidpeft-train writes to best/) loads like any checkpoint:
    the same report, the backbone loaded into a wrapped model, its head (another task's) re-initialised."""
    torch.manual_seed(0)
    source = vidpeft.build_model("videoswin-micro", "full", num_classes=3)
    vidpeft.save_adapter(source, tmp_path / "run" / "best")
    model = vidpeft.build_model("videoswin-micro", "lora", num_classes=NUM_CLASSES)
    report = load_pretrained(model, tmp_path / "run")
    assert report.format == "vidpeft videoswin-micro full fine-tuning run"
    assert report.reinitialised == ["head.bias", "head.weight"] and report.unexpected == [] and report.missing == []
    assert report.added and all("lora_" in k for k in report.added)
    torch.testing.assert_close(model.layers[3].blocks[1].attn.qkv.base_layer.weight,
                               source.layers[3].blocks[1].attn.qkv.weight, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"a videoswin checkpoint \(vidpeft videoswin-micro full fine-tuning run "
                       r"format\), which cannot load into a videomae model"):
        load_pretrained(build_backbone("videomae-micro", NUM_CLASSES), tmp_path / "run")
    vidpeft.save_adapter(vidpeft.build_model("videoswin-micro", "norm", num_classes=3), tmp_path / "norm")
    with pytest.raises(ValueError, match="a norm run holds only its adapter"):
        load_pretrained(model, tmp_path / "norm")
    small = vidpeft.build_model("videoswin-micro", "full", num_classes=3, backbone_options={"mlp_ratio": 2.0})
    with pytest.raises(ValueError, match=r"mlp\.fc1\.(weight|bias) has shape .* right model size"):
        load_pretrained(small, tmp_path / "run")
