"""The registries drive everything: backbone facts, method options and their CLI flags."""
from __future__ import annotations

import re
import typing
from dataclasses import fields
from pathlib import Path

import pytest
import torch

import vidpeft
from vidpeft.backbones import BACKBONES, BackboneInfo, backbone_info, build_backbone
from vidpeft.cli import bench as bench_cli
from vidpeft.cli import params as params_cli
from vidpeft.cli import train as train_cli
from vidpeft.cli.common import method_fields
from vidpeft.config.train import TrainConfig
from vidpeft.engine.optim import build_optimizer
from vidpeft.methods import METHODS
from vidpeft.methods.patt import PATTConfig

PACKAGE = Path(vidpeft.__file__).parent


def test_every_backbone_has_its_facts():
    for name in BACKBONES.names():
        info = backbone_info(name)
        assert isinstance(info, BackboneInfo) and info.frames > 0
        with torch.device("meta"):
            model = build_backbone(name, 3)
        assert model.family == info.family
        assert isinstance(model.no_weight_decay(), set)
        assert len(info.mean) == len(info.std) == 3


def test_unknown_backbone_is_a_one_line_error():
    with pytest.raises(KeyError, match=r"unknown backbone 'vit-x': choose one of .*videomae-b.*videoswin-b"):
        backbone_info("vit-x")


def test_for_backbone_fills_only_unset_options_from_the_backbone():
    swin, vit = backbone_info("videoswin-b"), backbone_info("videomae-b")
    assert PATTConfig().for_backbone(swin).patt_dim == swin.method_defaults["patt_dim"] == 128
    assert PATTConfig().for_backbone(vit).patt_dim == 32
    assert PATTConfig(patt_dim=7).for_backbone(swin).patt_dim == 7


def test_no_weight_decay_comes_from_the_model():
    """Swin's relative position tables (its no_weight_decay()) and every 1-D tensor get no decay."""
    model = vidpeft.build_model("videoswin-micro", "bitfit", 3)  # trains biases and the tables
    optimizer = build_optimizer(model, TrainConfig(optimizer="adamw", weight_decay=0.05), lr=1e-3)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decay == {"head.weight"}
    no_decay = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert any(n.endswith("relative_position_bias_table") for n in no_decay)


def test_every_method_option_is_a_documented_flag_of_every_cli(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100000")  # no line wrapping inside names
    for main in (params_cli.main, train_cli.main, bench_cli.main):
        with pytest.raises(SystemExit):
            main(["--help"])
        text = capsys.readouterr().out
        for name in METHODS.names():
            method = METHODS.get(name)
            assert f"{name}: {method.description}" in text
            for f in fields(method.config):
                assert f.metadata.get("help"), f"{name}.{f.name} has no help"
                assert f"--{f.name.replace('_', '-')}" in text
        for name in BACKBONES.names():
            assert name in text


def test_flags_are_typed_by_the_field_annotation(capsys):
    options = method_fields()
    assert options["rank"][0] is int and options["patt_targets"][0] == tuple[str, ...]
    assert options["patt_dim"][0] is int  # `int | None`
    assert params_cli.main(["--backbone", "videoswin-b", "--method", "lora", "--targets", "q,k,v", "--json"]) == 0
    assert '"trainable": 1155072' in capsys.readouterr().out  # 3 slices x 24 blocks x rank 16 x (d + d)
    with pytest.raises(SystemExit):
        params_cli.main(["--backbone", "videoswin-b", "--method", "bitfit", "--rel-pos-tables", "maybe"])
    assert "expected true or false" in capsys.readouterr().err


def test_an_option_shared_by_two_methods_has_one_type():
    seen: dict[str, object] = {}
    for name in METHODS.names():
        config = METHODS.get(name).config
        for f in fields(config):
            kind = typing.get_type_hints(config)[f.name]
            assert seen.setdefault(f.name, kind) == kind, f.name


def test_no_code_outside_backbones_tests_a_backbone_name():
    pattern = re.compile(r"""startswith\(\s*["']video|split\(\s*["']-["']\s*(,\s*1\s*)?\)\[""")
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "backbones" not in p.parts and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
