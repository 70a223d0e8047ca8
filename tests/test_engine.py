"""vidpeft-train / vidpeft-test / vidpeft-predict end to end, on videos prepared by vidpeft-prep."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_data_temporal import mmaction_dense

from vidpeft.cli import predict as predict_cli
from vidpeft.cli import prep as prep_cli
from vidpeft.cli import test as test_cli
from vidpeft.cli import train as train_cli
from vidpeft.config.run import RunConfig
from vidpeft.engine.precision import native_cpu_bf16
from vidpeft.synthetic import make_dataset

BIN = Path(sys.executable).parent
SMALL = ["--frames", "4", "--stride", "2", "--input-size", "32", "--num-workers", "0", "--batch-size", "4",
         "--optimizer", "adamw", "--lr", "1e-3", "--warmup-epochs", "0", "--clips", "2", "--crops", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A prepared SSv2-layout set: 4 motion classes, 16 official train videos (12 train + 4 held out
    as val.csv) and 8 official validation videos (test.csv)."""
    root = tmp_path_factory.mktemp("engine")
    make_dataset("ssv2", root / "raw", classes=4, per_class=6, size=(64, 48), frames=12, seed=3)
    assert prep_cli.main(["ssv2", "--src", str(root / "raw"), "--out", str(root / "data"), "--workers", "2"]) == 0
    return root / "data"


def train(data: Path, work: Path, *extra: str, method: str = "bapat", epochs: int = 2) -> int:
    return train_cli.main(["--backbone", "videomae-micro", "--method", method, "--data", str(data),
                           "--work-dir", str(work), "--epochs", str(epochs), *SMALL, *extra])


def log_rows(work: Path) -> list[dict]:
    with (work / "log.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_writes_a_complete_self_describing_run(data, tmp_path, capsys, monkeypatch):
    work = tmp_path / "run"
    assert train(data, work) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "2 clips x 3 crops" in out
    assert "select-on-test" not in out  # the held-out val.csv shares no video with test.csv
    for name in ("config.yaml", "last.pt", "log.csv", "eval.json", "best/adapter.safetensors", "best/adapter.json"):
        assert (work / name).is_file(), name
    assert [int(r["epoch"]) for r in log_rows(work)] == [1, 2]
    result = json.loads((work / "eval.json").read_text())
    test_videos = (data / "test.csv").read_text().splitlines()
    assert result["videos"] == len(test_videos) == 8 and result["unreadable"] == []
    assert result["views"] == {"frames": 4, "stride": 2, "clips": 2, "crops": 3, "temporal": "videomae"}
    assert result["selected_on_test"] is False
    assert 0 <= result["top1"] <= result["top5"] <= 100 and "mean_class_accuracy" in result
    assert result["checkpoint"] == str(work / "best")
    best_epoch = max(log_rows(work), key=lambda r: float(r["val_top1"]))["epoch"]
    assert result["model_selection"].startswith(f"epoch {best_epoch} of 2: best val top-1")
    spec = json.loads((work / "best" / "adapter.json").read_text())
    assert spec["method"] == "bapat" and spec["labels"][0] == "Approaching something with your camera"
    # the adapter is kilobytes, not the backbone
    assert (work / "best" / "adapter.safetensors").stat().st_size < 200_000
    # the default precision: bf16 only where this CPU has it natively (emulated bf16 is ~20x slower)
    expected = "bfloat16" if native_cpu_bf16() else "float32"
    assert RunConfig.read(work / "config.yaml").to_dict()["resolved"]["precision"] == expected
    # vidpeft-test re-scores with other views; vidpeft-predict names labels with scores
    assert test_cli.main(["--work-dir", str(work), "--clips", "1", "--crops", "1",
                          "--out", str(tmp_path / "e.json")]) == 0
    rescored = json.loads((tmp_path / "e.json").read_text())
    assert rescored["views"]["clips"] == 1 and rescored["views"]["crops"] == 1 and rescored["videos"] == 8
    # the same fields as the run's eval.json, paths absolute, however the work dir was given
    monkeypatch.chdir(work.parent)
    assert test_cli.main(["--work-dir", work.name, "--clips", "1", "--crops", "1"]) == 0
    default_out = json.loads((work / "eval_test_1x1.json").read_text())
    assert set(default_out) == set(result) and default_out["checkpoint"] == result["checkpoint"]
    assert default_out["selected_on_test"] is False and default_out["list"] == result["list"]
    assert Path(default_out["checkpoint"]).is_absolute() and Path(default_out["list"]).is_absolute()
    # --dump-views: the frames and boxes of every view, against the reference formulas
    assert test_cli.main(["--work-dir", str(work), "--clips", "3", "--temporal", "mmaction", "--out",
                          str(tmp_path / "m.json"), "--dump-views", str(tmp_path / "views.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["views"]["temporal"] == "mmaction"
    dumped = json.loads((tmp_path / "views.json").read_text())
    assert dumped["views"] == {"frames": 4, "stride": 2, "clips": 3, "crops": 3, "temporal": "mmaction"}
    assert [v["path"] for v in dumped["videos"]] == [str(data / line.rsplit(" ", 1)[0]) for line in test_videos]
    for video in dumped["videos"]:
        assert video["num_frames"] == 12 and video["frame_size"] == [48, 64] and video["resized"] == [32, 42]
        assert video["clips"] == mmaction_dense(12, 4, 2, 3)  # offsets round(k * 5 / 2) = 0, 2, 5
        assert [(v["clip"], v["crop"], v["box"]) for v in video["views"]] == [
            (k, c, [0, left, 32, 32]) for k in range(3) for c, left in enumerate([0, 5, 10])]  # (42 - 32) // 2
    capsys.readouterr()
    video = data / test_videos[0].rsplit(" ", 1)[0]
    assert predict_cli.main([str(video), "--work-dir", str(work), "--topk", "3", "--json"]) == 0
    [prediction] = json.loads(capsys.readouterr().out)
    scores = [p["score"] for p in prediction["predictions"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    labels = (data / "labels.txt").read_text().splitlines()
    assert all(labels[p["label_id"]] == p["label"] for p in prediction["predictions"])
    broken = tmp_path / "broken clip.mp4"
    broken.write_bytes(os.urandom(3000))
    assert predict_cli.main([str(video), str(broken), "--work-dir", str(work)]) == 1
    captured = capsys.readouterr()
    assert str(video) in captured.out and labels[prediction["predictions"][0]["label_id"]] in captured.out
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(broken) in errors[0] and "from the list" not in errors[0]
    # a file that is not there is an argument error (exit 2, like every other), before any work
    missing = tmp_path / "no such clip.mp4"
    assert predict_cli.main([str(video), str(missing), "--work-dir", str(work)]) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such video file\n"


@pytest.mark.parametrize("native", [True, False])
def test_default_precision_on_cpu_is_bf16_only_where_it_is_native(monkeypatch, native):
    import torch

    from vidpeft.engine import precision as engine

    monkeypatch.setattr(engine, "native_cpu_bf16", lambda: native)
    context, scaler = engine.autocast(torch.device("cpu"), True)
    assert getattr(context, "fast_dtype", None) == (torch.bfloat16 if native else None) and scaler is None
    forced, _ = engine.autocast(torch.device("cpu"), "bf16")  # asked for: always honoured
    assert forced.fast_dtype == torch.bfloat16
    off, _ = engine.autocast(torch.device("cpu"), "none")
    assert not hasattr(off, "fast_dtype")


@pytest.mark.parametrize("native", [True, False])
def test_a_run_records_the_precision_it_resolved_on_either_kind_of_cpu(data, tmp_path, monkeypatch, native):
    """Both precision paths through vidpeft-train, whatever this machine's CPU has: the default
    (--amp auto) computes in bf16 only where the CPU has it natively, and config.yaml says which."""
    from vidpeft.engine import precision

    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: native)
    work = tmp_path / "run"
    assert train(data, work, "--eval-every", "0", "--clips", "1", "--crops", "1", epochs=1, method="bitfit") == 0
    expected = "bfloat16" if native else "float32"
    assert RunConfig.read(work / "config.yaml").resolved.precision == expected


def test_selecting_epochs_on_the_test_list_is_refused_unless_asked(data, tmp_path, capsys):
    work = tmp_path / "run"
    assert train(data, work, "--val-list", "test.csv", epochs=1) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error
    assert "8 of its videos are in the test list" in error and "--select-on-test" in error
    assert not work.exists()  # refused before anything was written
    assert train(data, work, "--val-list", "test.csv", "--select-on-test", epochs=1) == 0
    result = json.loads((work / "eval.json").read_text())
    assert result["selected_on_test"] is True and "shares 8 videos with the test list" in result["model_selection"]


def test_corrupt_test_video_is_reported_and_excluded(data, tmp_path):
    work = tmp_path / "run"
    assert train(data, work, "--eval-every", "0", epochs=1) == 0
    assert log_rows(work)[0]["val_top1"] == ""
    assert json.loads((work / "eval.json").read_text())["model_selection"] == "last epoch (1), validation off"
    broken = tmp_path / "broken clip.mp4"
    broken.write_bytes(os.urandom(5000))
    listing = tmp_path / "with_broken.csv"
    listing.write_text((data / "test.csv").read_text() + f"{broken} 0\n")
    run_eval = (work / "eval.json").read_text()
    assert test_cli.main(["--work-dir", str(work), "--list", str(listing), "--data", str(data)]) == 0
    result = json.loads((work / "eval_with_broken_2x3.json").read_text())
    assert result["unreadable"] == [str(broken)] and result["videos"] == 8
    # the run's own eval.json stays; the new file says how the checkpoint was chosen
    assert (work / "eval.json").read_text() == run_eval
    assert result["model_selection"] == "last epoch (1), validation off"


def test_unreadable_training_video_is_skipped_or_fatal_with_strict(data, tmp_path, capsys):
    broken = data.parent / "broken.mp4"
    broken.write_bytes(b"")
    (data.parent / "train_broken.csv").write_text((data / "train.csv").read_text() + f"{broken} 1\n")
    shutil.copy(data.parent / "train_broken.csv", data / "train_broken.csv")
    assert train(data, tmp_path / "a", "--train-list", "train_broken.csv", epochs=1) == 0
    assert int(log_rows(tmp_path / "a")[0]["skipped_videos"]) == 1
    capsys.readouterr()
    assert train(data, tmp_path / "b", "--train-list", "train_broken.csv", "--strict", epochs=1) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(broken) in errors[0]
    (data / "train_broken.csv").unlink()


def test_a_skipped_video_never_leaves_a_batch_that_cannot_train(data, tmp_path):
    """The vpetl recipe's BatchNorm head on VideoMAE, a batch left with one clip by an unreadable video
    (one process), and a rank left with none (torchrun): both train, the video counted as skipped."""
    first = (data / "train.csv").read_text().splitlines()[0]
    (data / "one_and_missing.csv").write_text(f"{first}\n{data / 'gone.mp4'} 1\n")
    try:
        work = tmp_path / "one"
        assert train(data, work, "--train-list", "one_and_missing.csv", "--batch-size", "2", "--eval-every", "0",
                     epochs=1, method="lora") == 0
        assert int(log_rows(work)[0]["skipped_videos"]) == 1
        assert RunConfig.read(work / "config.yaml").model.backbone_options["head_norm"] is True
        ddp = run_cli(str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "vidpeft.cli.train",
                      "--backbone", "videomae-micro", "--method", "lora", "--data", str(data), "--work-dir",
                      str(tmp_path / "ddp"), "--epochs", "2", *SMALL, "--batch-size", "1", "--eval-every", "0",
                      "--train-list", "one_and_missing.csv")
        assert ddp.returncode == 0, ddp.stderr[-3000:]
        assert [int(r["skipped_videos"]) for r in log_rows(tmp_path / "ddp")] == [1, 1]
    finally:
        (data / "one_and_missing.csv").unlink()


def test_bad_input_gets_one_line_errors(data, tmp_path, capsys):
    assert train(data, tmp_path / "w", method="adaptor") == 2
    assert "unknown method 'adaptor'" in capsys.readouterr().err
    assert train_cli.main(["--backbone", "videomae-micro", "--data", str(tmp_path / "nope"),
                           "--work-dir", str(tmp_path / "w")]) == 2
    assert "no such data folder" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert train(data, tmp_path / "w", "--pretrained", str(bad)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0]
    notes = tmp_path / "notes.pth"  # text saved under a checkpoint's name
    notes.write_text("lr 0.1 was too high\ntry 0.05 next\n")
    assert train(data, tmp_path / "w", "--pretrained", str(notes)) == 2
    assert capsys.readouterr().err.startswith(f"error: {notes}: not a readable PyTorch checkpoint")
    assert not (tmp_path / "w").exists()
    assert test_cli.main(["--work-dir", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing'}: no such work dir; pass the --work-dir of a " \
        "vidpeft-train run\n"


def test_a_work_dir_holding_a_run_is_refused_unless_overwrite(data, tmp_path, capsys):
    work = tmp_path / "run"
    assert train(data, work, method="linear", epochs=1) == 0
    before = {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert train(data, work, method="linear", epochs=2) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(work) in errors[0] and "--resume" in errors[0] and "--overwrite" in errors[0]
    assert {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file()} == before

    (work / "notes.txt").write_text("mine", encoding="utf-8")
    assert train(data, work, "--overwrite", method="linear", epochs=2) == 0
    assert [row["epoch"] for row in log_rows(work)] == ["1", "2"]
    assert RunConfig.read(work / "config.yaml").to_dict()["train"]["epochs"] == 2
    assert (work / "notes.txt").read_text(encoding="utf-8") == "mine"  # only the run's own outputs are replaced


def test_full_run_serves_as_pretrained_backbone(data, tmp_path, capsys):
    assert train(data, tmp_path / "full", method="full", epochs=1) == 0
    assert train(data, tmp_path / "lora", "--pretrained", str(tmp_path / "full"), method="lora", epochs=1) == 0
    assert "vidpeft videomae-micro full fine-tuning run" in capsys.readouterr().out
    spec = json.loads((tmp_path / "lora" / "best" / "adapter.json").read_text())
    assert spec["pretrained"] == str(tmp_path / "full")


def run_cli(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=600, **kwargs)


def test_torchrun_two_processes_train_and_score_each_video_once(data, tmp_path):
    work = tmp_path / "ddp"
    ddp = run_cli(str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "vidpeft.cli.train",
                  "--backbone", "videomae-micro", "--method", "adaptformer", "--data", str(data),
                  "--work-dir", str(work), "--epochs", "1", *SMALL)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert sum(line.startswith("top-1") for line in ddp.stdout.splitlines()) == 1  # only rank 0 reports
    single = run_cli(str(BIN / "vidpeft-test"), "--work-dir", str(work), "--out", str(tmp_path / "one.json"))
    assert single.returncode == 0, single.stderr
    two = run_cli(str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "vidpeft.cli.test",
                  "--work-dir", str(work), "--out", str(tmp_path / "two.json"))
    assert two.returncode == 0, two.stderr[-3000:]
    one, both = (json.loads((tmp_path / n).read_text()) for n in ("one.json", "two.json"))
    assert one == both and one["videos"] == 8


def test_videomae_recipe_trains_with_its_augmentations(data, tmp_path):
    """RandAugment, random resized crop, random erasing, mixup/cutmix, label smoothing, layer decay."""
    work = tmp_path / "mae"
    assert train_cli.main(["--backbone", "videoswin-micro", "--method", "lora", "--data", str(data),
                           "--work-dir", str(work), "--recipe", "videomae", "--epochs", "1", "--frames", "4",
                           "--input-size", "32", "--num-workers", "0", "--batch-size", "4", "--clips", "1",
                           "--crops", "1", "--warmup-epochs", "0"]) == 0
    import yaml

    cfg = yaml.safe_load((work / "config.yaml").read_text())
    assert cfg["data"]["randaugment"] and cfg["data"]["train_crop"] == "random_resized"
    assert cfg["data"]["sampling"] == "segment" and cfg["data"]["flip"] is False  # SSv2 settings
    assert cfg["train"]["mixup"] > 0 and cfg["train"]["layer_decay"] < 1 and cfg["train"]["optimizer"] == "adamw"
    assert float(log_rows(work)[0]["train_loss"]) > 0


@pytest.mark.parametrize("backbone, method, options", [
    ("videomae-micro", "adapter", ["--adapter-dim", "8"]),
    ("videoswin-micro", "vpt", ["--prompt-length", "4"]),
    ("videomae-micro", "vpt", ["--vpt-mode", "shallow", "--prompt-dropout", "0.1"]),
    ("videoswin-micro", "norm", []),
    ("videomae-micro", "partial", ["--partial-blocks", "1"]),
])
def test_the_new_methods_train_through_the_cli(data, tmp_path, backbone, method, options):
    """Adapter, VPT, NormTuning and Partial-k train and test through vidpeft-train with their
    options as flags; the best checkpoint holds exactly the method's trainable tensors."""
    import vidpeft
    from safetensors import safe_open

    work = tmp_path / method
    assert train(data, work, "--backbone", backbone, *options, method=method, epochs=1) == 0
    spec = json.loads((work / "best" / "adapter.json").read_text())
    assert spec["method"] == method
    rows = log_rows(work)
    assert len(rows) == 1 and 0 < float(rows[0]["train_loss"]) < 10
    assert 0 <= json.loads((work / "eval.json").read_text())["top1"] <= 100
    model = vidpeft.build_model(backbone, method, len(spec["labels"]), backbone_options=spec["backbone_options"],
                                **spec["options"])
    # the trainable tensors (with the vpetl recipe's ViT head: fc_norm too) and the head BatchNorm's statistics
    trainable = set(vidpeft.model.adapter_state_dict(model))
    with safe_open(str(work / "best" / "adapter.safetensors"), "pt") as saved:
        assert set(saved.keys()) == trainable
