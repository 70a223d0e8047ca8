"""Every method on both micro backbones, through the public API; exact counts at full size."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import vidpeft
from vidpeft.cli import params as params_cli
from vidpeft.methods import blocks, canonical_key
from vidpeft.methods.lora import LoRAQKV
from vidpeft.methods.patt import ParallelAttention

BACKBONES = ["videomae-micro", "videoswin-micro"]
METHODS = vidpeft.METHODS.names()
NUM_CLASSES = 5
# what each method adds, by the module or parameter name it lives under
ADDED = {"lora": ("lora_A", "lora_B"), "adaptformer": (".adapter.",), "prefix": (".kv_prefix.",),
         "bapat": (".adapter.", ".qkv.down.", ".qkv.up."), "patt": (".qkv.down.", ".qkv.up.")}


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
    model = vidpeft.build_model(backbone, method, NUM_CLASSES, backbone_options={"drop_path_rate": 0.0}, **options)
    vidpeft.load_pretrained(model, path)
    return model.eval()


@pytest.mark.parametrize("method", METHODS)
def test_step0_output_and_structural_freezing(pretrained, method):
    backbone, path, reference = pretrained
    model = build(backbone, method, path)
    with torch.no_grad():
        expected, got = reference(clip()), model(clip())
    if method == "prefix":
        assert (got - expected).abs().max() > 1e-6, "prefixes must change attention"
    else:
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    head = [n for n in trainable if n.startswith("head.")]
    assert head == ["head.weight", "head.bias"]
    rest = [n for n in trainable if not n.startswith("head.")]
    if method == "linear":
        assert rest == []
    elif method == "full":
        assert len(rest) == len(list(model.parameters())) - 2
    elif method == "bitfit":
        assert rest and all(n.rsplit(".", 1)[1] in ("bias", "q_bias", "v_bias", "relative_position_bias_table")
                            for n in rest)
    else:
        assert rest and all(any(mark in n for mark in ADDED[method]) for n in rest), rest


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
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        if p.requires_grad:
            assert changed, f"{name} is trainable but did not change"
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
        assert not any(isinstance(m, LoRAQKV) for m in model.modules())
        assert not any("lora" in name for name, _ in model.named_parameters())
        torch.testing.assert_close(model(clip()), expected, rtol=1e-5, atol=1e-5)
        vidpeft.unmerge_lora(model)
        assert all(isinstance(block.attn.qkv, LoRAQKV) for block in blocks(model))
        for block, w in zip(blocks(model), weights):
            torch.testing.assert_close(block.attn.qkv.base_layer.weight, w, rtol=0, atol=1e-6)
        torch.testing.assert_close(model(clip()), expected, rtol=1e-5, atol=1e-5)


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
    with pytest.raises(KeyError, match="unknown method 'adapter'.*choose one of.*adaptformer"):
        vidpeft.build_model("videomae-micro", "adapter", NUM_CLASSES)
    with pytest.raises(TypeError, match="method 'lora' has no option adapter_dim"):
        vidpeft.build_model("videomae-micro", "lora", NUM_CLASSES, adapter_dim=8)
    with pytest.raises(ValueError, match="targets"):
        vidpeft.build_model("videomae-micro", "lora", NUM_CLASSES, targets=("q", "x"))


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


@pytest.mark.parametrize("method", ["lora", "bapat", "prefix"])
def test_load_report_lists_method_tensors_apart_from_missing_keys(pretrained, method):
    backbone, path, _ = pretrained
    model = vidpeft.build_model(backbone, method, NUM_CLASSES)
    report = vidpeft.load_pretrained(model, path)
    added = sorted(canonical_key(n) for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head."))
    assert report.missing == [] and report.added == added
    assert f"added by the method, initialised by it ({len(added)} tensors)" in str(report)
