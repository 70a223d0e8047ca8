"""Model settings of the published rows: AdaptFormer's adapter input, the ViT head options
(BatchNorm before the head, init std / scale, fc_norm trained) and fc_norm's learning rate."""
import argparse

import pytest
import torch
import torch.nn.functional as F

import vidpeft
from vidpeft.cli import train as train_cli
from vidpeft.config.recipes import load_recipe
from vidpeft.config.train import TrainConfig
from vidpeft.engine.optim import build_optimizer
from vidpeft.methods import blocks

CLASSES = 5


def clip(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("backbone, method, expected_input", [
    ("videomae-micro", "adaptformer", "residual"), ("videomae-micro", "bapat", "residual"),
    ("videoswin-micro", "adaptformer", "norm2"), ("videomae-micro", "adaptformer", "norm2"),
])
def test_adapter_input_equals_the_dense_block(backbone, method, expected_input):
    options = {"adapter_input": expected_input} if backbone == "videomae-micro" and expected_input == "norm2" else {}
    torch.manual_seed(0)
    model = vidpeft.build_model(backbone, method, CLASSES, **options).eval()
    assert model.vidpeft_spec.options["adapter_input"] == expected_input
    block = next(blocks(model))
    adapter = block.mlp.adapter
    with torch.no_grad():
        adapter.up.weight.normal_(std=0.5)
        norm2 = getattr(block.norm2, "base_layer", block.norm2)
        stream = torch.randn(2, 10, adapter.down.in_features)
        mlp = block.mlp.base_layer
        source = stream if expected_input == "residual" else norm2(stream)
        expected = stream + mlp(norm2(stream)) + 0.1 * adapter.up(F.relu(adapter.down(source)))
        assert torch.allclose(stream + block.mlp(block.norm2(stream)), expected, atol=1e-5)


def test_head_options_from_the_vpetl_recipe_reach_the_model(tmp_path):
    args = train_cli.build_parser().parse_args([
        "--backbone", "videomae-micro", "--method", "linear", "--data", str(tmp_path), "--work-dir",
        str(tmp_path / "run"), "--dataset", "ssv2"])
    cfg = train_cli.resolved_config(args)
    options = cfg.model.backbone_options
    assert options == {"drop_path_rate": 0.0, "head_norm": True, "head_init_std": 0.01, "train_fc_norm": True}
    swin = train_cli.resolved_config(argparse.Namespace(**{**vars(args), "backbone": "videoswin-micro"}))
    assert swin.model.backbone_options == {"drop_path_rate": 0.4}  # the head options are ViT-only

    torch.manual_seed(0)
    model = vidpeft.build_model("videomae-micro", "linear", 400, backbone_options=options)
    assert isinstance(model.head_norm, torch.nn.BatchNorm1d)
    assert (model.head_norm.affine, model.head_norm.eps) == (False, 1e-6)
    assert abs(model.head.weight.std().item() - 0.01) < 0.0005 and model.head.bias.abs().max() == 0
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    model.eval()
    with torch.no_grad():
        model.head_norm.running_mean.normal_()
        model.head_norm.running_var.uniform_(0.5, 2)
        x = clip()
        bn = model.head_norm
        features = (model.forward_features(x) - bn.running_mean) / torch.sqrt(bn.running_var + 1e-6)
        assert torch.allclose(model(x), model.head(features), atol=1e-5)


def test_videomae_head_init_scale():
    recipe = load_recipe("videomae", dataset="k400", backbone="videomae-micro")
    torch.manual_seed(0)
    model = vidpeft.build_model("videomae-micro", "full", 400, backbone_options=recipe["backbone"])
    assert abs(model.head.weight.std().item() - 0.02 * 0.001) < 2e-6


def test_head_batchnorm_statistics_are_saved_with_the_adapter(tmp_path):
    options = {"head_norm": True, "train_fc_norm": True}
    model = vidpeft.build_model("videomae-micro", "adaptformer", CLASSES, backbone_options=options, seed=3)
    model.train()
    with torch.no_grad():
        model(clip(4))  # training updates the running statistics
    assert model.head_norm.running_mean.abs().sum() > 0
    vidpeft.save_adapter(model, tmp_path / "a")
    loaded = vidpeft.load_adapter(tmp_path / "a").eval()
    assert torch.equal(loaded.head_norm.running_mean, model.head_norm.running_mean)
    assert torch.equal(loaded.head_norm.running_var, model.head_norm.running_var)
    assert torch.equal(loaded(clip()), model.eval()(clip()))


def test_fc_norm_and_head_learn_at_full_rate_under_layer_decay():
    """VideoMAE optim_factory.get_num_layer_for_vit: blocks.i -> i + 1, everything after the
    blocks (fc_norm, head) -> L + 1, scale 0.75 ** (L + 1 - id)."""
    model = vidpeft.build_model("videomae-micro", "full", CLASSES)
    optimizer = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05, layer_decay=0.75), 1.0)
    scale = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())
    depth = len(model.blocks)
    assert scale[id(named["fc_norm.weight"])] == scale[id(named["head.weight"])] == 1.0
    assert scale[id(named["blocks.1.mlp.fc1.weight"])] == 0.75 ** (depth - 1)
    assert scale[id(named["patch_embed.proj.weight"])] == 0.75 ** (depth + 1)


def test_a_recipe_sets_method_options_per_dataset_and_flags_win(tmp_path):
    """configs/aim.yaml: AIM's SSv2 settings (vitclip_base_sthv2.py: adapter_scale=1, num_tadapter=2)
    come from the recipe's methods: entry for ssv2 only; a flag on the command line wins."""
    from vidpeft.cli import train as train_cli

    (tmp_path / "data").mkdir()

    def options(*flags: str) -> dict:
        args = train_cli.build_parser().parse_args(
            ["--backbone", "clip-micro", "--method", "aim", "--recipe", "aim", "--data", str(tmp_path / "data"),
             "--work-dir", str(tmp_path / "w"), *flags])
        return dict(train_cli.resolved_config(args).model.options)

    assert options("--dataset", "ssv2") == {"adapter_scale": 1.0, "temporal_adapter_in": True}
    assert options("--dataset", "ssv2", "--adapter-scale", "0.7") == {"adapter_scale": 0.7, "temporal_adapter_in": True}
    assert options("--dataset", "k400") == {}


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_the_fused_optimiser_steps_as_the_per_tensor_reference(name, device):
    """build_optimizer's fused kernels (one per tensor on CPU and CUDA) give the parameters torch's
    per-tensor loop gives, with the engine's groups (decay, no decay, layer scales)."""
    train = TrainConfig(optimizer=name, weight_decay=0.05, layer_decay=0.75, momentum=0.9)
    models = [vidpeft.build_model("videomae-micro", "mona", CLASSES, seed=0).eval().to(device)  # no dropout
              for _ in range(2)]
    fused = build_optimizer(models[0], train, 1e-2)
    assert all(group["fused"] for group in fused.param_groups)
    twin = {id(a): b for a, b in zip(models[0].parameters(), models[1].parameters())}
    reference = type(fused)([{**group, "params": [twin[id(p)] for p in group["params"]], "fused": None, "foreach": False}
                             for group in fused.param_groups])
    for _ in range(3):
        for model, optimizer in zip(models, (fused, reference)):
            optimizer.zero_grad()
            model(clip().to(device)).logsumexp(1).mean().backward()
            optimizer.step()
    for (key, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)
