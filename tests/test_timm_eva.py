"""timm's Eva class (DINOv3, EVA-02) applied frame-wise: equal to timm's own forward frame by frame
(rotary embedding, register tokens, SwiGLU), on the configured frame size and another, and timm's
checkpoints (separate q/k/v projections included) loading into the fused attention."""
from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

import vidpeft
from fixtures.checkpoint_formats import randomize_
from vidpeft.backbones import backbone_info, build_backbone
from vidpeft.backbones.timm_image import ALIASES, MICRO, PREFIX

EVAS = ["dinov3-micro", "eva02-micro"]


def clip(shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def timm_twin(name: str, seed: int = 1, **kwargs) -> torch.nn.Module:
    """timm's own model of the alias's configuration, random weights off their init."""
    model = build_backbone(name, 5)
    torch.manual_seed(seed)
    image = randomize_(timm.create_model(model.timm_name, **{**model.timm_kwargs, **kwargs}), seed=seed)
    with torch.no_grad():  # sharper attention, so that a missing rotation shows
        for name, p in image.named_parameters():
            if "attn." in name and name.endswith("proj.weight") and "attn.proj" not in name or name.endswith("qkv.weight"):
                p.mul_(8.0)
    return image


def timm_clip_feature(image: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's pooled feature of every frame, averaged over the frames."""
    b, _, t = x.shape[:3]
    frames = x.transpose(1, 2).flatten(0, 1)
    with torch.no_grad():
        return image.forward_head(image.forward_features(frames), pre_logits=True).view(b, t, -1).mean(1)


@pytest.mark.parametrize("name", EVAS)
@pytest.mark.parametrize("side", [(64, 64), (48, 80)])
def test_equal_to_timm_frame_by_frame(name, side):
    reference = timm_twin(name)
    model = build_backbone(name, 5, temporal_embedding=False).eval()
    assert model.family == "timm-eva" and backbone_info(name).frame_wise
    model.image.load_state_dict(reference.state_dict())
    x = clip((2, 3, 3, *side))
    with torch.no_grad():
        ours = model.forward_features(x)
    expected = timm_clip_feature(reference, x)
    assert expected.abs().max() > 0.1 and (ours - expected).abs().max() <= 1e-5
    reference.rope = None  # the same model without its rotary embedding differs: the test sees the rotation
    assert (timm_clip_feature(reference, x) - expected).abs().max() > 1e-2


def test_rotation_survives_a_method_wrapping_the_attention():
    """Methods wrap `block.attn` (AIM's S-Adapter, ...): the rotary embedding still reaches the attention."""
    x = clip((1, 3, 2, 64, 64))
    torch.manual_seed(0)
    plain = vidpeft.build_model("dinov3-micro", "linear", 5).eval()
    torch.manual_seed(0)  # the same backbone and head: the method's parts come after them
    wrapped = vidpeft.build_model("dinov3-micro", "aim", 5).eval()
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), plain(x), rtol=0, atol=1e-6)
    assert all(attn.rope is not None for attn in wrapped.rotated)


def test_register_tokens_stay_first_and_prompts_follow_them():
    model = build_backbone("dinov3-micro", 5).eval()
    assert model.image.num_prefix_tokens == 5 and model.token_layout.num_prefix_tokens == 5  # class + 4 registers
    seen = {}
    model.blocks[0].register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))

    class Prompts(torch.nn.Module):
        def forward(self, tokens):
            return torch.full((1, 2, tokens.shape[-1]), 7.0)

    model.extra_tokens = Prompts()
    with torch.no_grad():
        model(clip((1, 3, 2, 64, 64)))
    x = seen["x"]
    assert x.shape == (2, 5 + 2 + 16, 64) and (x[:, 5:7] == 7.0).all()
    torch.testing.assert_close(x[:, 0], model.image.cls_token[0].expand(2, -1) + model.temporal_embed[0, :2])


def test_eva02_release_with_separate_qkv_loads_fused(tmp_path):
    """timm's EVA-02 as released (q_proj / k_proj / v_proj, k without bias) -> one qkv plus q/v biases."""
    separate = timm_twin("eva02-micro", qkv_fused=False)
    assert "blocks.0.attn.q_proj.weight" in separate.state_dict()
    save_file({k: v.contiguous() for k, v in separate.state_dict().items()}, tmp_path / "eva02.safetensors")
    model = build_backbone("eva02-micro", 5, temporal_embedding=False).eval()
    report = vidpeft.load_pretrained(model, tmp_path / "eva02.safetensors")
    assert report.format == "timm / official Eva (DINOv3, EVA-02)" and report.unexpected == []
    assert report.missing == ["head.bias", "head.weight"]
    x = clip((1, 3, 2, 64, 64))
    with torch.no_grad():
        assert (model.forward_features(x) - timm_clip_feature(separate, x)).abs().max() <= 1e-5


@pytest.mark.parametrize("name", EVAS)
def test_vidpeft_and_timm_checkpoints_are_told_apart(name, tmp_path):
    model = build_backbone(name, 5)
    torch.save(model.state_dict(), tmp_path / "ours.pth")
    save_file({k[len(PREFIX):]: v.contiguous() for k, v in model.state_dict().items() if k.startswith(PREFIX)},
              tmp_path / "timm.safetensors")
    assert vidpeft.load_pretrained(build_backbone(name, 5), tmp_path / "ours.pth").format == "vidpeft timm Eva"
    report = vidpeft.load_pretrained(build_backbone(name, 5), tmp_path / "timm.safetensors")
    assert report.format == "timm / official Eva (DINOv3, EVA-02)" and report.unexpected == []


@pytest.mark.parametrize("alias", ["dinov3-b16", "eva02-b14"])
def test_full_size_aliases_count_as_timm(alias):
    with torch.device("meta"):
        ours = build_backbone(alias, 400)
        theirs = timm.create_model(ALIASES[alias][0], num_classes=0)
    image = sum(p.numel() for n, p in ours.named_parameters() if n.startswith(PREFIX))
    assert image == sum(p.numel() for p in theirs.parameters())
    assert {"dinov3-b16": 86e6, "eva02-b14": 86e6}[alias] == pytest.approx(image, rel=0.02)  # timm's model cards
    assert MICRO["embed_dim"] < ours.num_features
