"""The attentive probe (V-JEPA 2's): logits equal to a dense re-computation of its pooler written
here on every micro backbone, gradients only in the probe and the head, its init, its refusals,
vidpeft-params and vidpeft-train with configs/probe.yaml."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from test_engine import data, train  # noqa: F401  (the prepared-videos fixture and the vidpeft-train call)

import vidpeft
from vidpeft.backbones import micro_backbones
from vidpeft.cli import params as params_cli
from vidpeft.errors import UserError
from vidpeft.methods import blocks
from vidpeft.methods.probe import AttentivePooler, ProbeConfig

NUM_CLASSES = 5
HEADS = 4


def clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(seed))


def probe_model(backbone: str, depth: int = 2) -> torch.nn.Module:
    model = vidpeft.build_model(backbone, "probe", NUM_CLASSES, seed=0, probe_depth=depth, probe_heads=HEADS)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every probe tensor off its init (LayerNorms included)
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def last_tokens(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The patch tokens the last block outputs, read with a forward hook on a plain copy of the backbone."""
    plain = vidpeft.build_model(model.vidpeft_spec.backbone, "linear", NUM_CLASSES, seed=0).eval()
    last = list(blocks(plain))[-1]
    seen = []
    handle = last.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        plain(x)
    handle.remove()
    grid, _ = last.token_layout.to_grid(seen[0])
    return plain.final_norm()(grid.flatten(2).transpose(1, 2))


def dense_attention(q, k, v, heads):
    b, n, c = q.shape
    d = c // heads
    q, k, v = (t.reshape(b, -1, heads, d).permute(0, 2, 1, 3) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (weights @ v).permute(0, 2, 1, 3).reshape(b, n, c)


def layer_norm(x, norm):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def linear(x, layer):
    return x @ layer.weight.T + layer.bias


def mlp(x, m):
    return linear(F.gelu(linear(x, m.fc1)), m.fc2)


def dense_probe(pooler: AttentivePooler, tokens: torch.Tensor) -> torch.Tensor:
    """V-JEPA 2's AttentivePooler written out: self-attention blocks over the tokens, then the query."""
    x = tokens
    for block in pooler.blocks:
        q, k, v = linear(layer_norm(x, block.norm1), block.self_attn.qkv).chunk(3, dim=-1)
        x = x + linear(dense_attention(q, k, v, HEADS), block.self_attn.proj)
        x = x + mlp(layer_norm(x, block.norm2), block.mlp)
    cross = pooler.cross_attention_block
    query = pooler.query_tokens.expand(len(x), 1, -1)
    kv = linear(layer_norm(x, cross.norm1), cross.xattn.kv)
    query = query + dense_attention(linear(query, cross.xattn.q), *kv.chunk(2, dim=-1), HEADS)
    query = query + mlp(layer_norm(query, cross.norm2), cross.mlp)
    return query.squeeze(1)


@pytest.mark.parametrize("backbone", micro_backbones())
def test_probe_equals_a_dense_recomputation(backbone):
    model = probe_model(backbone)
    x = clip()
    tokens = last_tokens(model, x)
    with torch.no_grad():
        logits = model(x)
        expected = linear(dense_probe(model.head_drop.pooler, tokens), model.head)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
    # the tap is an identity: the backbone's own pooled feature is unchanged
    plain = vidpeft.build_model(backbone, "linear", NUM_CLASSES, seed=0).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), plain.forward_features(x), rtol=0, atol=0)


@pytest.mark.parametrize("backbone", micro_backbones())
def test_gradients_reach_only_the_probe_and_the_head(backbone):
    model = probe_model(backbone).train()
    F.cross_entropy(model(clip()), torch.tensor([1, 3])).backward()
    for name, p in model.named_parameters():
        in_probe = name.startswith(("head_drop.pooler.", "head."))
        assert p.requires_grad == in_probe, name
        assert (p.grad is not None and p.grad.abs().sum() > 0) == in_probe, name


def test_init_is_vjepa2s():
    torch.manual_seed(0)
    pooler = AttentivePooler(512, ProbeConfig(probe_depth=3))
    std = 0.02

    def assert_std(t, expected):
        assert abs(t.std().item() / expected - 1) < 0.05

    for i, block in enumerate(pooler.blocks, start=1):
        assert_std(block.self_attn.proj.weight, std / math.sqrt(2 * i))
        assert_std(block.mlp.fc2.weight, std / math.sqrt(2 * i))
        assert_std(block.self_attn.qkv.weight, std)
        assert block.self_attn.qkv.bias.abs().sum() == 0 and torch.equal(block.norm1.weight, torch.ones(512))
    assert_std(pooler.cross_attention_block.mlp.fc2.weight, std / math.sqrt(2 * 2))  # the last block's index
    assert_std(pooler.cross_attention_block.xattn.kv.weight, std)
    assert not hasattr(pooler.cross_attention_block.xattn, "proj")  # V-JEPA 2's CrossAttention has none


def test_heads_that_do_not_divide_the_width_are_a_one_line_error():
    with pytest.raises(UserError, match="probe_heads 7 does not divide the token width 64") as error:
        vidpeft.build_model("videomae-micro", "probe", NUM_CLASSES, probe_heads=7)
    assert "\n" not in str(error.value)


def test_vidpeft_params_counts_the_probe(capsys):
    assert params_cli.main(["--backbone", "videomae-micro", "--method", "probe", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    c = 64
    cross = 2 * 2 * c + (c * c + c) + (2 * c * c + 2 * c) + (4 * c * c + 4 * c) + (4 * c * c + c)
    assert counts["trainable"] == c + cross and counts["head"] == 174 * c + 174


def test_probe_trains_through_vidpeft_train_with_its_recipe(data, tmp_path):  # noqa: F811
    work = tmp_path / "probe"
    assert train(data, work, "--recipe", "probe", method="probe", epochs=1) == 0
    spec = json.loads((work / "best" / "adapter.json").read_text())
    assert spec["options"]["probe_depth"] == 4 and spec["options"]["probe_heads"] == 16  # the recipe's methods:
    assert json.loads((work / "eval.json").read_text())["videos"] > 0
