"""Image models of timm applied frame-wise: parity with timm's own model on every file form, format
detection apart from VideoMAE, and AIM (its temporal attention against an explicit computation)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import vidpeft
from fixtures.checkpoint_formats import (
    randomize_,
    save_official,
    timm_beit_to_official_pretraining,
    timm_clip_to_openai,
    timm_vit_to_google_npz,
)
from vidpeft.backbones import backbone_info, build_backbone
from vidpeft.backbones.timm_image import MICRO
from vidpeft.cli import params as params_cli
from vidpeft.methods.aim import TemporalAttention

NUM_CLASSES = 5
SIZE = 64  # frames of 64x64: 4x4 patches of 16


def clip(shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


VIT = "timm/vit_tiny_patch16_224.augreg_in21k"  # a plain ViT (patch bias, no pre-norm), made micro below


def ours(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(123)  # a tensor that failed to load would keep this random init
    micro = MICRO if name == VIT else {}
    return build_backbone(name, NUM_CLASSES, img_size=SIZE, **micro, **kw).eval()


def timm_reference(name: str, seed: int) -> torch.nn.Module:
    """timm's image model of the same architecture, random weights, an image classifier of 10 classes."""
    model = ours(name)
    torch.manual_seed(seed)
    return randomize_(timm.create_model(model.timm_name, **{**model.timm_kwargs, "num_classes": 10}), seed)


def image_features(reference: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's pooled feature of every frame of x (B, 3, T, H, W) -> (B, T, C)."""
    frames = x.transpose(1, 2).flatten(0, 1)
    with torch.no_grad():
        return reference.forward_head(reference.forward_features(frames), pre_logits=True).view(*x.shape[:3:2], -1)


def assert_parity(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    """T = 1: our pooled feature is timm's on that frame; T = 3: the mean of timm's per-frame features."""
    x = clip((2, 3, 3, SIZE, SIZE))
    per_frame = image_features(reference, x)
    assert per_frame.abs().max() > 0.1
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x[:, :, :1]), per_frame[:, 0], rtol=0, atol=1e-5)
        torch.testing.assert_close(model.forward_features(x), per_frame.mean(1), rtol=0, atol=1e-5)


def write(form: str, reference: torch.nn.Module, d) -> object:
    sd = {k: v.contiguous() for k, v in reference.state_dict().items()}
    if form == "timm-safetensors":  # timm's hub files: model.safetensors (a directory works too)
        (d / "timm").mkdir()
        save_file(sd, str(d / "timm" / "model.safetensors"))
        return d / "timm"
    if form == "timm-bin":
        torch.save(sd, d / "pytorch_model.bin")
        return d / "pytorch_model.bin"
    if form == "google-npz":
        np.savez(d / "ViT-B_16.npz", **timm_vit_to_google_npz(sd, reference.blocks[0].attn.num_heads))
        return d / "ViT-B_16.npz"
    if form == "openai-clip":
        torch.save(timm_clip_to_openai(sd), d / "ViT-B-16.state_dict.pt")
        return d / "ViT-B-16.state_dict.pt"
    if form == "open-clip":  # an open_clip training checkpoint: DDP names under state_dict
        checkpoint = {"epoch": 32, "name": "ViT-B-16", "state_dict": {f"module.{k}": v for k, v in timm_clip_to_openai(sd).items()}}
        torch.save(checkpoint, d / "epoch_32.pt")
        return d / "epoch_32.pt"
    if form == "beit-official":  # BEiT's fine-tuning script saves {"model": ...} with the index buffers
        sd.update({f"blocks.{i}.attn.relative_position_index": b.attn.relative_position_index
                   for i, b in enumerate(reference.blocks)})
        return save_official(sd, d / "beitv2_base_patch16_224_pt1k_ft21kto1k.pth", "model")
    raise AssertionError(form)


IMAGE_HEAD = ["image.head.bias", "image.head.weight"]
VIDEO_HEAD = ["head.bias", "head.weight"]
FORMS = [  # (backbone, file form, detected format, unexpected keys)
    (VIT, "timm-safetensors", "timm ViT", IMAGE_HEAD),
    (VIT, "timm-bin", "timm ViT", IMAGE_HEAD),
    (VIT, "google-npz", "Google ViT .npz", ["head/bias", "head/kernel", "pre_logits/bias", "pre_logits/kernel"]),
    ("clip-micro", "timm-safetensors", "timm ViT", IMAGE_HEAD),
    ("clip-micro", "openai-clip", "OpenAI CLIP / open_clip", IMAGE_HEAD),  # CLIP's projection `proj`
    ("clip-micro", "open-clip", "OpenAI CLIP / open_clip", IMAGE_HEAD),
    ("beitv2-micro", "timm-safetensors", "timm / official BEiT", IMAGE_HEAD),
    ("beitv2-micro", "beit-official", "timm / official BEiT", IMAGE_HEAD),
]


@pytest.mark.parametrize("name, form, expected, unexpected", FORMS)
def test_every_file_form_loads_completely_and_matches_timm(name, form, expected, unexpected, tmp_path):
    reference = timm_reference(name, seed=3)
    model = ours(name)
    report = vidpeft.load_pretrained(model, write(form, reference, tmp_path))
    assert report.format == expected
    # every backbone tensor loads; the video classifier is new (no image checkpoint has it)
    assert report.missing == VIDEO_HEAD and report.reinitialised == [] and report.unexpected == unexpected
    assert report.video_only == ["temporal_embed"] and "zero-initialised: temporal_embed" in str(report)
    assert len(report.loaded) == len(reference.state_dict()) - 2  # all but the image classifier
    assert_parity(model, reference)


def test_official_beitv2_pretraining_checkpoint(tmp_path):
    """The shared relative position table goes to every block (as BEiT's fine-tuning does), the
    masked-image-modelling heads are dropped, and fc_norm keeps its fresh initialisation."""
    reference = timm_reference("beitv2-micro", seed=4)
    with torch.no_grad():
        for block in reference.blocks[1:]:
            block.attn.relative_position_bias_table.copy_(reference.blocks[0].attn.relative_position_bias_table)
    sd = {k: v for k, v in reference.state_dict().items() if not k.startswith("head.")}
    path = save_official(timm_beit_to_official_pretraining(sd), tmp_path / "beitv2_base_patch16_224_pt1k.pth", "model")
    model = ours("beitv2-micro")
    report = vidpeft.load_pretrained(model, path)
    assert report.format == "official BEiT v2 pre-training"
    assert report.missing == VIDEO_HEAD + ["image.fc_norm.bias", "image.fc_norm.weight"]
    assert report.unexpected == ["image.norm.bias", "image.norm.weight"]  # the pre-training encoder's final norm
    reference.fc_norm.reset_parameters()
    assert_parity(model, reference)


def test_any_frame_size_and_clip_length():
    """ViTs resample their position embedding (as timm does); BEiT reads the table entries of the
    offsets of a smaller grid; a longer clip interpolates the temporal embedding."""
    for name in ("clip-micro", "beitv2-micro"):
        model = build_backbone(name, 3).eval()  # built for 224 px frames
        with torch.no_grad():
            assert model(clip((1, 3, 5, 48, 80))).shape == (1, 3)
        assert model.token_grid == (5, 3, 5)
    with pytest.raises(ValueError, match="covers 4x4 patches, frames give 5x4"):
        ours("beitv2-micro")(clip((1, 3, 2, 80, 64)))
    with pytest.raises(ValueError, match=r"T divisible by 1 and H, W divisible by 16"):
        ours(VIT)(clip((1, 3, 2, 40, 64)))


def test_temporal_embedding_is_added_to_every_token_of_its_frame():
    """With a temporal embedding e, frame t is timm's image model with e[t] added to its position embedding
    (a clip of another length than the table's reads it linearly interpolated)."""
    model = ours(VIT, num_frames=3)
    with torch.no_grad():
        model.temporal_embed.normal_()
    reference = timm.create_model(model.timm_name, **model.timm_kwargs).eval()
    reference.load_state_dict({k[len("image."):]: v for k, v in model.state_dict().items() if k.startswith("image.")})
    x = clip((2, 3, 3, SIZE, SIZE))
    expected = []
    for t in range(3):
        with torch.no_grad():
            reference.pos_embed.copy_(model.image.pos_embed + model.temporal_embed[:, t])
        expected.append(image_features(reference, x[:, :, t:t + 1])[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), torch.stack(expected, 1).mean(1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, other", [(VIT, "videomae-micro"), ("videomae-micro", VIT),
                                         ("beitv2-micro", "clip-micro")])
def test_a_checkpoint_of_another_family_is_a_one_line_error(name, other, tmp_path):
    torch.save(vidpeft.build_model(name, "full", NUM_CLASSES).state_dict() if name.startswith("videomae")
               else timm_reference(name, seed=5).state_dict(), tmp_path / "weights.pth")
    with pytest.raises(ValueError, match=r"weights\.pth: .* cannot load into a (videomae|timm-vit|timm-beit) model") as err:
        vidpeft.load_pretrained(build_backbone(other, NUM_CLASSES) if other.startswith("videomae") else ours(other),
                                tmp_path / "weights.pth")
    assert "\n" not in str(err.value)


def test_openai_clip_torchscript_download_is_refused_with_the_way_out(tmp_path):
    with warnings.catch_warnings():  # torch.jit.save is deprecated; OpenAI's files were made with it
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "ViT-B-16.pt")
    with pytest.raises(ValueError, match=r"ViT-B-16\.pt: a TorchScript archive.*torch\.jit\.load\(PATH") as err:
        vidpeft.load_pretrained(build_backbone("clip-micro", NUM_CLASSES), tmp_path / "ViT-B-16.pt")
    assert "\n" not in str(err.value)


def test_backbone_facts_come_from_timm():
    assert backbone_info("clip-b16").mean == timm.data.OPENAI_CLIP_MEAN and backbone_info("clip-b16").frame_wise
    assert backbone_info("vit-b16-in21k").mean == (0.5, 0.5, 0.5)  # Google's in21k weights take [-1, 1]
    assert backbone_info("beitv2-b16").family == "timm-beit"
    info = backbone_info("timm/vit_small_patch16_224.augreg_in21k")
    assert info.family == "timm-vit" and info.frames == 8
    with pytest.raises(KeyError, match="timm has no model 'nope'"):
        backbone_info("timm/nope")
    model = build_backbone("beitv2-micro", 3)
    assert "temporal_embed" in model.no_weight_decay()
    assert "image.blocks.1.attn.relative_position_bias_table" in model.no_weight_decay()


# ---------------------------------------------------------------- AIM

def explicit_temporal(block, branch: TemporalAttention, x: torch.Tensor, frames: int) -> torch.Tensor:
    """x + T-Adapter(attention along time), written out with the block's frozen weights."""
    attn = branch.frozen[1]
    n, length, dim = x.shape
    heads, hd = attn.num_heads, attn.head_dim
    xt = x.reshape(n // frames, frames, length, dim).permute(0, 2, 1, 3).reshape(-1, frames, dim)
    h = block.norm1(xt)
    if branch.adapter_in is not None:
        h = h + branch.adapter_in.fc2(F.gelu(branch.adapter_in.fc1(h)))
    bias = attn.qkv.bias if attn.q_bias is None else torch.cat((attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias))
    q, k, v = (t.reshape(-1, frames, heads, hd).transpose(1, 2) for t in F.linear(h, attn.qkv.weight, bias).chunk(3, -1))
    weights = (q @ k.transpose(-2, -1) / hd ** 0.5).softmax(-1)
    a = attn.proj((weights @ v).transpose(1, 2).reshape(-1, frames, dim))
    a = branch.adapter.fc2(F.gelu(branch.adapter.fc1(a)))
    return x + a.reshape(n // frames, length, frames, dim).permute(0, 2, 1, 3).reshape(n, length, dim)


@pytest.mark.parametrize("name, adapter_in", [("clip-micro", False), ("beitv2-micro", True)])
def test_aim_temporal_attention_equals_explicit_attention_along_time(name, adapter_in):
    torch.manual_seed(0)
    model = vidpeft.build_model(name, "aim", NUM_CLASSES, temporal_adapter_in=adapter_in,
                                backbone_options={"img_size": SIZE}).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(std=0.1)
        model(clip((2, 3, 4, SIZE, SIZE)))  # sets the token layout: 4 frames of 4x4 patches
        block = model.blocks[1]
        x = clip((2 * 4, 17, model.num_features), seed=1)
        torch.testing.assert_close(block.pre_attn(x), explicit_temporal(block, block.pre_attn, x, 4), rtol=1e-5, atol=1e-5)


def test_aim_needs_a_frame_wise_backbone():
    with pytest.raises(ValueError, match="aim adapts image models applied frame-wise") as err:
        vidpeft.build_model("videomae-micro", "aim", NUM_CLASSES)
    assert "\n" not in str(err.value)


def test_aim_count_on_vit_b16(capsys):
    """Three adapters of 2·768·192 + 192 + 768 in 12 blocks (METHODS.md: 10,651,392) + the temporal embedding."""
    assert params_cli.main(["--backbone", "clip-b16", "--method", "aim", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trainable"] == 3 * 12 * 295_872 + 8 * 768 == 10_651_392 + 6_144
    params_cli.main(["--backbone", "clip-b16", "--method", "aim", "--temporal-adapter-in", "true", "--json"])
    assert json.loads(capsys.readouterr().out)["trainable"] == 4 * 12 * 295_872 + 8 * 768


# ---------------------------------------------------------------- through the user's commands

def test_recipes_take_the_backbones_normalisation():
    from vidpeft.config.recipes import load_recipe

    for recipe in ("aim", "vpetl", "videomae"):
        assert load_recipe(recipe, "k400", backbone="clip-b16")["data"]["mean"] == list(timm.data.OPENAI_CLIP_MEAN)
        assert load_recipe(recipe, "k400", backbone="videomae-b")["data"]["std"] == [0.229, 0.224, 0.225]
    aim = load_recipe("aim", "ssv2", backbone="clip-b16")
    assert (aim["data"]["frames"], aim["data"]["sampling"], aim["data"]["flip"]) == (8, "segment", False)
    assert (aim["test"], aim["train"]["epochs"], aim["train"]["label_smoothing"]) == ({"clips": 1, "crops": 3}, 50, 0.1)
    k400 = load_recipe("aim", "k400", backbone="clip-b16")
    assert (k400["data"]["stride"], k400["test"], k400["train"]["optimizer"]) == (16, {"clips": 3, "crops": 1}, "adamw")


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory):
    """A CLIP micro model's weights as OpenAI's state dict, and timm's model that holds them."""
    d = tmp_path_factory.mktemp("clip")
    reference = timm_reference("clip-micro", seed=6)
    return write("openai-clip", reference, d), reference


def test_train_test_predict_aim_on_clip(clip_checkpoint, tmp_path, capsys):
    """vidpeft-prep -> vidpeft-train (AIM recipe, CLIP weights in OpenAI's form) -> vidpeft-test -> vidpeft-predict."""
    from vidpeft.cli import predict as predict_cli
    from vidpeft.cli import prep as prep_cli
    from vidpeft.cli import test as test_cli
    from vidpeft.cli import train as train_cli
    from vidpeft.config.run import RunConfig
    from vidpeft.synthetic import make_dataset

    path, _ = clip_checkpoint
    make_dataset("k400", tmp_path / "raw", classes=2, per_class=3, size=(48, 32), frames=10, seed=1)
    assert prep_cli.main(["k400", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "data"), "--workers", "1"]) == 0
    work = tmp_path / "run"
    assert train_cli.main([
        "--backbone", "clip-micro", "--method", "aim", "--recipe", "aim", "--data", str(tmp_path / "data"),
        "--work-dir", str(work), "--pretrained", str(path), "--epochs", "1", "--frames", "4", "--stride", "2",
        "--input-size", "32", "--num-workers", "0", "--batch-size", "2", "--clips", "1", "--eval-every", "0",
        "--adapter-scale", "1.0", "--temporal-adapter-in", "true"]) == 0
    out = capsys.readouterr().out
    assert "OpenAI CLIP / open_clip checkpoint" in out and "top-1" in out
    cfg = RunConfig.read(work / "config.yaml").to_dict()
    assert cfg["data"]["mean"] == list(timm.data.OPENAI_CLIP_MEAN) and cfg["data"]["stride"] == 2
    spec = json.loads((work / "best" / "adapter.json").read_text())
    assert spec["options"]["adapter_scale"] == 1.0 and spec["options"]["temporal_adapter_in"] is True
    assert test_cli.main(["--work-dir", str(work), "--clips", "2", "--crops", "1", "--out", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["views"]["clips"] == 2
    video = next((tmp_path / "data" / "videos").rglob("*.mp4"))
    capsys.readouterr()
    assert predict_cli.main([str(video), "--work-dir", str(work), "--topk", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["predictions"]) == 2


def test_mmaction_plugin_takes_an_image_backbone(clip_checkpoint):
    pytest.importorskip("mmaction")
    from vidpeft.mmaction import PEFTBackbone

    path, reference = clip_checkpoint
    backbone = PEFTBackbone(arch="clip-micro", method="aim", pretrained=str(path), backbone_cfg={"img_size": SIZE}).eval()
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    assert "model.temporal_embed" in trainable and all("adapter" in n or "temporal" in n for n in trainable)
    x = clip((1, 3, 2, SIZE, SIZE))
    with torch.no_grad():
        features = backbone(x)
    assert features.shape == (1, 64, 1, 1, 1)
    torch.testing.assert_close(features.flatten(), image_features(reference, x).mean(1).flatten(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["clip-micro", "beitv2-micro"])
def test_shallow_prompts_follow_the_class_token_and_are_not_pooled(name):
    """Shallow VPT: each frame's sequence is [class, prompts, patches] in every block (BEiT's relative
    bias leaves the prompt rows and columns at zero); the prompts' outputs are dropped before pooling."""
    torch.manual_seed(0)
    model = vidpeft.build_model(name, "vpt", NUM_CLASSES, vpt_mode="shallow", prompt_length=3,
                                backbone_options={"img_size": SIZE}).eval()
    seen = []
    model.blocks[1].register_forward_pre_hook(lambda blk, args: seen.append(args[0]))
    x = clip((2, 3, 2, SIZE, SIZE))
    with torch.no_grad():
        with_prompts = model.forward_features(x)
        assert seen[0].shape == (2 * 2, 1 + 3 + 16, model.num_features)
        grid, extra = model.blocks[1].token_layout.to_grid(seen[0])
        assert grid.shape == (2, model.num_features, 2, 4, 4) and extra.shape[1] == 4
        prompts = model.extra_tokens
        model.extra_tokens = None
        without = model.forward_features(x)
        model.extra_tokens = prompts
    assert with_prompts.shape == without.shape and not torch.allclose(with_prompts, without, atol=1e-4)
