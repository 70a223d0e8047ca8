"""DoRA: equal to peft's DoRA on transformers' VideoMAE with the same weights (logits and gradients),
peft's dropout formula, merging, the magnitude after load_pretrained, vidpeft-params, vidpeft-train."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from test_checkpoints import MICRO_VIT, NUM_CLASSES, assert_same_logits, clip, hf_videomae
from test_engine import data, train  # noqa: F401  (the prepared-videos fixture and the vidpeft-train call)

import vidpeft
from fixtures.checkpoint_formats import save_hf_directory
from vidpeft.cli import params as params_cli
from vidpeft.methods.dora import DoRALinear

RANK, ALPHA = 4, 8.0
ALL = ("q", "k", "v", "proj", "mlp")
# our target -> (module path in one of our blocks, slice of its rows or None, transformers' module under layer.i)
PARTS = {"q": ("attn.qkv", 0, "attention.attention.query"), "k": ("attn.qkv", 1, "attention.attention.key"),
         "v": ("attn.qkv", 2, "attention.attention.value"), "proj": ("attn.proj", None, "attention.output.dense")}
MLP = [("mlp.fc1", None, "intermediate.dense"), ("mlp.fc2", None, "output.dense")]


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """transformers' VideoMAE (random weights, non-zero biases) saved as a Hugging Face directory."""
    model = hf_videomae(32, 4, **MICRO_VIT)
    return model, save_hf_directory(model, tmp_path_factory.mktemp("hf"), safetensors=True)


def parts(targets):
    return [PARTS[t] for t in targets if t in PARTS] + (MLP if "mlp" in targets else [])


def peft_dora(model: nn.Module, targets) -> nn.Module:
    names = "|".join(theirs.replace(".", r"\.") for _, _, theirs in parts(targets))
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, use_dora=True, modules_to_save=["classifier"],
                        target_modules=rf".*encoder\.layer\.\d+\.({names})")
    return get_peft_model(copy.deepcopy(model), config)


def our_slice(module: DoRALinear, slot: int | None, a=None, b=None, m=None):
    """(A, B, magnitude) of one target inside our wrapper (its parameters, or the given tensors of their shapes)."""
    a, b, m = (module.lora_A if a is None else a), (module.lora_B if b is None else b), (module.magnitude if m is None else m)
    width = module.base_layer.out_features // 3
    index = 0 if slot is None else [start for start, _ in module.slices].index(slot * width)
    rows = [stop - start for start, stop in module.slices]
    return a.split(RANK)[index], b.split(rows)[index], m.split(rows)[index]


def paired(hf, targets):
    """Our DoRA model and peft's on the same backbone, with the same random A, B and magnitudes."""
    reference, directory = hf
    ours = vidpeft.build_model("videomae-micro", "dora", NUM_CLASSES, rank=RANK, alpha=ALPHA, targets=targets)
    vidpeft.load_pretrained(ours, directory)
    theirs = peft_dora(reference, targets)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in (p for n, p in ours.named_parameters() if p.requires_grad and not n.startswith("head")):
            p.mul_(1 + 0.1 * torch.randn(p.shape, generator=g)) if p.ndim == 1 else p.copy_(0.2 * torch.randn(p.shape, generator=g))
        for i, block in enumerate(ours.blocks):
            for path, slot, name in parts(targets):
                a, b, m = our_slice(block.get_submodule(path), slot)
                layer = theirs.get_submodule(f"base_model.model.videomae.encoder.layer.{i}.{name}")
                layer.lora_A["default"].weight.copy_(a)
                layer.lora_B["default"].weight.copy_(b)
                layer.lora_magnitude_vector["default"].weight.copy_(m)
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize("targets", [("q", "v"), ALL])
def test_dora_equals_peft_dora_on_transformers_videomae(hf, targets):
    ours, theirs = paired(hf, targets)
    x = clip((2, 3, 4, 32, 32))
    weights = torch.randn(2, NUM_CLASSES, generator=torch.Generator().manual_seed(1))
    logits = ours(x)
    reference = theirs(pixel_values=x.transpose(1, 2)).logits
    assert_same_logits(logits, reference)
    (logits * weights).sum().backward()
    (reference * weights).sum().backward()
    for i, block in enumerate(ours.blocks):
        for path, slot, name in parts(targets):
            module = block.get_submodule(path)
            layer = theirs.get_submodule(f"base_model.model.videomae.encoder.layer.{i}.{name}")
            grad_a, grad_b, grad_m = our_slice(module, slot, module.lora_A.grad, module.lora_B.grad,
                                               module.magnitude.grad)
            assert_same_logits(grad_a, layer.lora_A["default"].weight.grad, min_scale=1e-6)
            assert_same_logits(grad_b, layer.lora_B["default"].weight.grad, min_scale=1e-6)
            assert_same_logits(grad_m, layer.lora_magnitude_vector["default"].weight.grad, min_scale=1e-6)


class FixedMask(nn.Module):
    """A dropout whose mask is given, so two implementations drop the same inputs."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.mask = mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def test_dropout_path_is_peft_formula():
    """Training with dropout: y = W·x + b + (f − 1)·W·x' + f·s·B·A·x' (x' dropped), as peft's DoRA."""
    torch.manual_seed(0)
    linear = nn.Linear(12, 9)
    cfg = vidpeft.METHODS.get("dora").config(rank=RANK, alpha=ALPHA, dropout=0.5)
    ours = DoRALinear(copy.deepcopy(linear), [(0, 9)], cfg).train()
    theirs = get_peft_model(nn.Sequential(copy.deepcopy(linear)), LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=0.5, use_dora=True, target_modules=["0"])).train()
    layer = theirs.base_model.model[0]
    with torch.no_grad():
        ours.lora_B.normal_()
        ours.magnitude.mul_(torch.rand(9) + 0.5)
        layer.lora_A["default"].weight.copy_(ours.lora_A)
        layer.lora_B["default"].weight.copy_(ours.lora_B)
        layer.lora_magnitude_vector["default"].weight.copy_(ours.magnitude)
    mask = torch.randint(0, 2, (5, 12)).float() * 2
    ours.dropout = FixedMask(mask)
    layer.lora_dropout["default"] = FixedMask(mask)
    x = torch.randn(5, 12)
    assert_same_logits(ours(x), theirs(x))
    # and the dense formula, written out
    w, b, s = linear.weight, linear.bias, ALPHA / RANK
    f = ours.magnitude / torch.linalg.norm(w + s * ours.lora_B @ ours.lora_A, dim=1)
    dense = x @ w.T + b + (f - 1) * ((x * mask) @ w.T) + f * s * ((x * mask) @ ours.lora_A.T @ ours.lora_B.T)
    assert_same_logits(ours(x), dense)


def test_load_pretrained_restarts_the_magnitude_so_step_0_is_the_backbone(hf):
    _, directory = hf
    model = vidpeft.build_model("videomae-micro", "dora", NUM_CLASSES, targets=ALL).eval()
    vidpeft.load_pretrained(model, directory)
    plain = vidpeft.build_model("videomae-micro", "linear", NUM_CLASSES).eval()
    vidpeft.load_pretrained(plain, directory)
    qkv = model.blocks[0].attn.qkv
    expected = torch.linalg.norm(plain.blocks[0].attn.qkv.weight, dim=1)
    assert torch.equal(qkv.magnitude, torch.cat([expected[:64], expected[64:128], expected[128:]]))
    x = clip((2, 3, 4, 32, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("backbone", ["videomae-micro", "videoswin-micro", "clip-micro", "videoprism-micro"])
def test_merge_keeps_the_logits_and_unmerge_restores_the_weights(backbone):
    model = vidpeft.build_model(backbone, "dora", NUM_CLASSES, targets=ALL, seed=0).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "magnitude" in name:
                p.mul_(1 + 0.2 * torch.rand(p.shape, generator=g))
    weights = {n: p.clone() for n, p in model.named_parameters() if n.endswith("base_layer.weight")}
    x = clip((2, 3, 8, 32, 32))
    with torch.no_grad():
        before = model(x)
        vidpeft.merge_dora(model)
        after = model(x)
        vidpeft.unmerge_dora(model)
        again = model(x)
    assert (before - after).abs().max().item() < 1e-5
    torch.testing.assert_close(again, before, rtol=0, atol=1e-5)
    for name, p in model.named_parameters():
        if name in weights:
            torch.testing.assert_close(p, weights[name], rtol=0, atol=1e-6)


def test_vidpeft_params_counts_dora(capsys):
    assert params_cli.main(["--backbone", "videomae-micro", "--method", "dora", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    width, depth, rank = 64, 2, 16
    per_target = rank * width + width * rank + width  # A, B, magnitude
    assert counts["trainable"] == depth * 2 * per_target
    assert params_cli.main(["--backbone", "videomae-micro", "--method", "dora", "--targets", "q,v,mlp",
                            "--json"]) == 0
    mlp = (rank * width + 4 * width * rank + 4 * width) + (rank * 4 * width + width * rank + width)
    assert json.loads(capsys.readouterr().out)["trainable"] == depth * (2 * per_target + mlp)


def test_dora_trains_through_vidpeft_train_and_merges(data, tmp_path):  # noqa: F811
    work = tmp_path / "dora"
    assert train(data, work, method="dora", epochs=1) == 0
    assert json.loads((work / "eval.json").read_text())["videos"] > 0
    model = vidpeft.load_adapter(work / "best").eval()
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)  # it trained
    x = clip((2, 3, 4, 32, 32))
    with torch.no_grad():
        before = model(x)
        after = vidpeft.merge_dora(model)(x)
    assert (before - after).abs().max().item() < 1e-5
