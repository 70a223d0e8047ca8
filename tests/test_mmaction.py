"""The mmaction2 plug-in, run the way an mmaction2 user runs it: a shipped config, mmengine's
Runner, mmaction2's decord pipeline, heads, AccMetric and multi-view test, on real mp4s."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mmaction", reason="mmaction2 is not installed: pip install -e '.[mmaction]'")

import vidpeft  # noqa: E402
import vidpeft.mmaction  # noqa: E402,F401  (applies the fixes, registers the plug-in)
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.checkpoint import _load_checkpoint  # noqa: E402
from vidpeft import synthetic  # noqa: E402
from vidpeft.backbones import build_backbone  # noqa: E402
from vidpeft.methods import canonical_key  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "mmaction"
CLASSES = 3
SCALE = 7  # shipped sizes / SCALE: crops 224 -> 32, short side 256 -> 36
TORCH_26 = tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2]) >= (2, 6)


# ---------------------------------------------------------------- data and checkpoints

@pytest.fixture(autouse=True)
def unformatted_config_text(monkeypatch):
    """mmengine runs yapf over the config for every log, dump and checkpoint (seconds each);
    the text stays valid Python without it, and its layout is not what is tested here."""
    import mmengine.config.config as config_module

    monkeypatch.setattr(config_module, "FormatCode", lambda text, **_: (text, False))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """What vidpeft-prep writes: videos/*.mp4 and train/val/test lists of `<path> <label>`, file names
    with spaces among them."""
    root = tmp_path_factory.mktemp("ssv2_prepped")
    (root / "videos").mkdir()
    lines = []
    for i in range(7):
        label = i % CLASSES
        clip = synthetic.render(synthetic.MOTIONS[label], np.random.default_rng(i), (64, 48), 16)
        name = f"{100 + i}.mp4" if i % 2 else f"clip {100 + i} (copy).mp4"  # any file name works
        synthetic.encode(clip, root / "videos" / name, "k400")
        lines.append(f"videos/{name} {label}\n")
    (root / "train.csv").write_text("".join(lines[:4]))
    (root / "val.csv").write_text("".join(lines[4:]))
    (root / "test.csv").write_text("".join(lines[4:]))
    return root


def mmaction2_checkpoint(arch: str, path: Path) -> dict[str, torch.Tensor]:
    """Save a fresh backbone as an mmaction2 model-zoo file (keys, K400 head); return its weights."""
    source = build_backbone(arch, num_classes=400).state_dict()
    if arch.startswith("videoswin"):
        rules = [(r"^norm\.", "norm3.")]
    else:
        rules = [(r"^patch_embed\.proj\.", "patch_embed.projection."),
                 (r"\.mlp\.fc1\.", ".mlp.layers.0.0."), (r"\.mlp\.fc2\.", ".mlp.layers.1.")]
    state = {}
    for key, value in source.items():
        if key.startswith("head."):
            state["cls_head.fc_cls." + key[5:]] = value
            continue
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        state["backbone." + key] = value
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": state}, path)
    return {k: v for k, v in source.items() if not k.startswith("head.")}


def small(pipeline: list) -> list:
    """The shipped pipeline at 1/SCALE of its sizes and 4-frame clips (at most 2 per video)."""
    out = []
    for step in map(dict, pipeline):
        if step["type"] == "SampleFrames":
            step.update(clip_len=4, frame_interval=2, num_clips=min(step["num_clips"], 2))
        elif step["type"] == "Resize":
            w, h = step["scale"]
            step["scale"] = (w if w == -1 else w // SCALE, h // SCALE)
        elif step["type"] == "MultiScaleCrop":
            step["input_size"] //= SCALE
        elif step["type"] in ("CenterCrop", "ThreeCrop"):
            step["crop_size"] //= SCALE
        out.append(step)
    return out


def config(name: str, arch: str, pretrained: Path, data: Path, work_dir: Path, **overrides) -> Config:
    """A shipped config, pointed at the micro backbone, the test data and 1 epoch of 2 iterations."""
    cfg = Config.fromfile(str(CONFIGS / name))
    # no drop path: it can drop a block for the whole batch, and then its method tensors do not move
    cfg.model.backbone.update(arch=arch, pretrained=str(pretrained), backbone_cfg=dict(drop_path_rate=0.0))
    cfg.model.cls_head.update(in_channels=build_backbone(arch, num_classes=1).num_features,
                              num_classes=CLASSES)
    for split, batch in (("train", 2), ("val", 2), ("test", 1)):
        loader = cfg[f"{split}_dataloader"]
        loader.update(batch_size=batch, num_workers=0, persistent_workers=False)
        loader.dataset.update(ann_file=str(data / f"{split}.csv"), data_prefix=dict(video=str(data)),
                              pipeline=small(loader.dataset.pipeline))
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    # AMP needs a GPU; a constant, larger lr so that two SGD steps visibly move every trainable tensor
    cfg.optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.5, momentum=0.9))
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    cfg.update(work_dir=str(work_dir), experiment_name=work_dir.name, randomness=dict(seed=0), **overrides)
    return cfg


class Recorder(Hook):
    """What a user reads off a run: parameters at the start, metrics, views per test video."""

    def __init__(self) -> None:
        self.start: dict[str, torch.Tensor] = {}
        self.start_iter = -1
        self.metrics: dict[str, dict] = {}
        self.test_inputs: list[torch.Tensor] = []  # per test video: (views, C, T, H, W) uint8
        self.test_scores: list[torch.Tensor] = []  # per test video: class probabilities

    def before_train(self, runner) -> None:  # after init_weights and any resume
        self.start = {n: p.detach().clone() for n, p in runner.model.named_parameters()}
        self.start_iter = runner.iter

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics["val"] = metrics

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.test_inputs.append(data_batch["inputs"][0])

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.test_scores.append(outputs[0].pred_score)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self.metrics["test"] = metrics


def run(cfg: Config, mode: str = "train") -> tuple[Runner, Recorder]:
    runner = Runner.from_cfg(cfg)
    recorder = Recorder()
    runner.register_hook(recorder, priority="LOWEST")
    getattr(runner, mode)()
    return runner, recorder


def expected_trainable(arch: str, method: str, method_cfg: dict) -> set[str]:
    """The method's parameters as vidpeft.build_model marks them, plus mmaction2's head."""
    model = vidpeft.build_model(arch, method, num_classes=CLASSES, **method_cfg)
    names = {n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")}
    return {f"backbone.model.{n}" for n in names} | {"cls_head.fc_cls.weight", "cls_head.fc_cls.bias"}


# ---------------------------------------------------------------- the runs

CASES = [("videoswin-micro", "videoswin-b_bapat_ssv2.py", False),
         ("videomae-micro", "videomae-b_lora_ssv2.py", True)]


@pytest.mark.parametrize("arch,config_name,with_cp", CASES)
def test_train_validate_test_resume_and_same_logits(arch, config_name, with_cp, data_root, tmp_path):
    pretrained = tmp_path / "mmaction2_zoo.pth"
    backbone_weights = mmaction2_checkpoint(arch, pretrained)
    cfg = config(config_name, arch, pretrained, data_root, tmp_path / "run")
    cfg.model.backbone.with_cp = with_cp  # activation checkpointing must not change what trains
    backbone_cfg = cfg.model.backbone
    trainable = expected_trainable(arch, backbone_cfg.method, backbone_cfg.method_cfg)

    # two training iterations, then validation (end of epoch 1)
    runner, rec = run(cfg)
    model = runner.model
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
    frozen = {canonical_key(n): p for n, p in model.backbone.model.named_parameters() if not p.requires_grad}
    assert frozen and set(frozen) <= set(backbone_weights)
    for name, param in frozen.items():  # the pretrained backbone, loaded and left alone
        assert torch.equal(param, backbone_weights[name]), name
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, rec.start[n])}
    assert changed == trainable
    assert runner.iter == 2 and set(rec.metrics["val"]) >= {"acc/top1", "acc/top5", "acc/mean1"}

    # the checkpoint holds only the trainable tensors
    ckpt = tmp_path / "run" / "epoch_1.pth"
    saved = _load_checkpoint(str(ckpt), map_location="cpu")
    assert set(saved["state_dict"]) == trainable and "optimizer" in saved

    # multi-view test from that checkpoint: 2 clips x 3 crops per video
    test_runner, test_rec = run(config(config_name, arch, pretrained, data_root, tmp_path / "test",
                                       load_from=str(ckpt)), mode="test")
    assert [views.shape[0] for views in test_rec.test_inputs] == [2 * 3] * 3
    assert test_rec.metrics["test"]["acc/top1"] in (0.0, 1 / 3, 2 / 3, 1.0)  # 3 test videos
    for name, value in saved["state_dict"].items():
        assert torch.equal(test_runner.model.get_parameter(name), value), name

    # the same model through vidpeft.build_model gives the same logits, and the same test scores
    plain = vidpeft.build_model(arch, backbone_cfg.method, num_classes=CLASSES, **backbone_cfg.method_cfg)
    vidpeft.load_pretrained(plain, pretrained)
    own = plain.state_dict()
    for name, value in saved["state_dict"].items():
        key = "head." + name.removeprefix("cls_head.fc_cls.") if name.startswith("cls_head.") else \
            name.removeprefix("backbone.model.")
        own[key] = value
    plain.load_state_dict(own)
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    plain.eval()
    test_runner.model.eval()
    mean, std = (torch.tensor(v).view(3, 1, 1, 1) for v in (cfg.model.data_preprocessor.mean,
                                                           cfg.model.data_preprocessor.std))
    with torch.no_grad():
        expected = plain(x)
        got = test_runner.model(x[:, None], mode="tensor", stage="head")  # (N, views=1, C, T, H, W)
        views = (test_rec.test_inputs[0].float() - mean) / std
        expected_score = plain(views).softmax(-1).mean(0)  # average_clips='prob'
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(test_rec.test_scores[0], expected_score, rtol=1e-5, atol=1e-6)

    # resume from the trainable-only checkpoint and train one more epoch
    if not TORCH_26:
        pytest.skip(f"resume through torch.load(weights_only=True) defaults is checked on torch >= 2.6, "
                    f"this is {torch.__version__}")
    cfg2 = config(config_name, arch, pretrained, data_root, tmp_path / "resume",
                  load_from=str(ckpt), resume=True)
    cfg2.train_cfg.max_epochs = 2
    resumed, rec2 = run(cfg2)
    assert rec2.start_iter == 2 and resumed.iter == 4 and resumed.epoch == 2
    for name, value in saved["state_dict"].items():
        assert torch.equal(rec2.start[name], value), name
    for name, value in rec2.start.items():  # and the frozen rest is the pretrained backbone
        if name not in trainable:
            assert torch.equal(value, rec.start[name]), name


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.py")))
def test_every_shipped_config_builds_the_methods_trainable_set(name, tmp_path):
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(CONFIGS / name))
    init_default_scope(cfg.default_scope)
    arch = cfg.model.backbone.arch.replace("-b", "-micro")
    pretrained = tmp_path / "zoo.pth"
    mmaction2_checkpoint(arch, pretrained)
    cfg.model.backbone.update(arch=arch, pretrained=str(pretrained))
    cfg.model.cls_head.in_channels = build_backbone(arch, num_classes=1).num_features
    model = MODELS.build(cfg.model)
    method = cfg.model.backbone
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected_trainable(
        arch, method.method, method.method_cfg)
    assert cfg.test_dataloader.dataset.ann_file.endswith("test.csv")
    assert [s["type"] for s in cfg.test_pipeline][:2] == ["DecordInit", "SampleFrames"]


@pytest.mark.parametrize("method", vidpeft.METHODS.names())
def test_the_plugin_takes_every_registered_method(method):
    """PEFTBackbone builds any registered method on both micro backbones (method_cfg is passed
    through), training exactly the method's tensors."""
    from vidpeft.mmaction.backbone import PEFTBackbone

    for arch in ("videomae-micro", "videoswin-micro"):
        try:
            backbone = PEFTBackbone(arch=arch, method=method)
        except ValueError:  # the method cannot run on this backbone (it says so in one line)
            continue
        trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
        assert {"backbone." + n for n in trainable} == {
            n for n in expected_trainable(arch, method, {}) if n.startswith("backbone.")}


# ---------------------------------------------------------------- the compatibility fixes

class NotAllowed:
    pass


class HistoryBufferMethod:
    """Pickles as getattr(HistoryBuffer, name), the way HistoryBuffer pickles its statistics."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer

        return getattr, (HistoryBuffer, self.name)


@pytest.mark.skipif(not TORCH_26, reason="the weights_only loader is installed on torch >= 2.6")
@pytest.mark.parametrize("payload,refusal", [
    (NotAllowed(), "NotAllowed"),
    (HistoryBufferMethod("update"), "only HistoryBuffer's min, max, current, mean are allowed"),
])
def test_checkpoint_loading_keeps_weights_only(payload, refusal, tmp_path):
    """mmengine's loader accepts its own checkpoint types but still refuses anything else."""
    from mmengine.logging.history_buffer import HistoryBuffer

    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {}, "meta": {"ok": HistoryBufferMethod("mean")}}, path)
    assert _load_checkpoint(str(path), map_location="cpu")["meta"]["ok"] is HistoryBuffer.mean
    torch.save({"state_dict": {}, "meta": {"thing": payload}}, path)
    with pytest.raises(Exception, match=re.escape(refusal)):
        _load_checkpoint(str(path), map_location="cpu")


def test_mmaction_models_import_and_drn_placeholder():
    import mmaction.models  # noqa: F401  (fails on the bare 1.2.0 wheel)
    from mmaction.models.localizers import DRN

    with pytest.raises(ImportError, match="does not ship the DRN localizer"):
        DRN()


def test_without_mmaction2_the_error_says_what_to_install():
    code = "import sys; sys.modules['mmaction'] = None; import vidpeft.mmaction"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'vidpeft[mmaction]'" in result.stderr.strip().splitlines()[-1]


def test_mmaction2_tools_train_reads_vidpeft_prep_lists_whatever_the_file_names(data_root, tmp_path):
    """mmaction2's own tools/train.py on a shipped config, on vidpeft-prep's lists whose video file
    names hold spaces (mmaction2's VideoDataset splits a line on every space)."""
    import mmaction

    assert any(" " in line.rsplit(" ", 1)[0] for line in (data_root / "train.csv").read_text().splitlines())
    pretrained = tmp_path / "zoo.pth"
    mmaction2_checkpoint("videomae-micro", pretrained)
    cfg = config("videomae-b_lora_ssv2.py", "videomae-micro", pretrained, data_root, tmp_path / "run")
    cfg.dump(str(tmp_path / "cfg.py"))
    tools = Path(mmaction.__file__).parent / ".mim" / "tools" / "train.py"
    done = subprocess.run([sys.executable, str(tools), str(tmp_path / "cfg.py"), "--work-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "epoch_1.pth").is_file()
    assert "acc/top1" in done.stdout + done.stderr  # validated on the val list after the epoch
