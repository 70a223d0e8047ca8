"""Every bad-input promise of the README, over every console script: exit status 2, one line on stderr
naming the flag, file or key, and nothing written. A new entry point without a case here fails
`test_every_console_script_has_bad_input_cases`."""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import pytest

from vidpeft.cli import prep as prep_cli
from vidpeft.cli import train as train_cli
from vidpeft.data.decode import available_decoders
from vidpeft.synthetic import make_dataset

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--frames", "4", "--stride", "2", "--input-size", "32", "--num-workers", "0", "--batch-size", "2",
         "--clips", "1", "--crops", "1", "--amp", "none"]
TRAIN = ["--backbone", "videomae-micro", "--method", "lora", *SMALL]


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A folder holding a prepared dataset (data/), a finished run (run/), a video and a grid with a typo."""
    root = tmp_path_factory.mktemp("bad_input")
    make_dataset("ssv2", root / "raw", classes=2, per_class=4, size=(64, 48), frames=8, seed=2)
    assert prep_cli.main(["ssv2", "--src", str(root / "raw"), "--out", str(root / "data"), "--workers", "1"]) == 0
    assert train_cli.main([*TRAIN, "--data", str(root / "data"), "--work-dir", str(root / "run"), "--epochs", "1",
                           "--eval-every", "0"]) == 0
    (root / "grid.yaml").write_text("backbones: [videomae-micro]\nmethodz: all\ndatasets: {d: data}\n")
    (root / "recipe.yaml").write_text("data: {frames: 4}\ntrian: {epochs: 1}\n")
    (root / "val_is_test.csv").write_text((root / "data" / "test.csv").read_text())
    return root


# (script, argv with {root} for the folder above, what the one line must say)
CASES = [
    ("train", ["--method", "lora"], "--backbone is required"),
    ("train", [*TRAIN, "--data", "{root}/nowhere"], "{root}/nowhere: no such data folder"),
    ("train", [*TRAIN, "--data", "{root}/data", "--frames", "7"], "--frames 7: videomae-micro needs a multiple of 2"),
    ("train", [*TRAIN, "--data", "{root}/data", "--input-size", "100"], "--input-size 100: videomae-micro needs a multiple of 16"),
    ("train", [*TRAIN, "--data", "{root}/data", "--batch-size", "0"], "--batch-size 0; must be at least 1"),
    ("train", [*TRAIN, "--data", "{root}/data", "--epochs", "0"], "--epochs 0; must be at least 1"),
    ("train", [*TRAIN, "--data", "{root}/data", "--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    ("train", [*TRAIN, "--data", "{root}/data", "--lr", "-1"], "--lr -1.0; must be > 0"),
    ("train", [*TRAIN, "--data", "{root}/data", "--optimizer", "adm"], "--optimizer 'adm'; use sgd or adamw"),
    ("train", [*TRAIN, "--data", "{root}/data", "--amp", "fp8"], "--amp 'fp8'; use bf16, fp16, none"),
    ("train", [*TRAIN, "--data", "{root}/data", "--temporal", "middle"], "--temporal 'middle'; must be one of"),
    ("train", [*TRAIN, "--data", "{root}/data", "--decoder", "ffmpeg"], "--decoder 'ffmpeg'; must be one of"),
    ("train", [*TRAIN, "--data", "{root}/data", "--num-workers", "-1"], "--num-workers -1; must be >= 0 or auto"),
    ("train", [*TRAIN, "--data", "{root}/data", "--decoder", "nvdec", "--num-workers", "2"],
     "--num-workers 2: decoder 'nvdec' decodes on the GPU in the training process"),
    *([("train", [*TRAIN, "--data", "{root}/data", "--decoder", "nvdec"], "error: decoder 'nvdec' is not available: ")]
      if "nvdec" not in available_decoders() else []),  # where it is, test_data_decode.py runs it
    ("train", [*TRAIN, "--data", "{root}/data", "--set", "train.warmup_epoch=5"],
     "unknown key train.warmup_epoch; did you mean train.warmup_epochs?"),
    ("train", [*TRAIN, "--data", "{root}/data", "--set", "foo.bar=1"], "--set foo.bar: unknown section 'foo'"),
    ("train", [*TRAIN, "--data", "{root}/data", "--set", "model.foo=1"], "--set model.foo: unknown section 'model'"),
    ("train", [*TRAIN, "--data", "{root}/data", "--set", "train.epochs=two"], "train.epochs: 'two' is not a valid int"),
    ("train", [*TRAIN, "--data", "{root}/data", "--set", "lr"], "--set 'lr': write it as section.key=value"),
    ("train", [*TRAIN, "--data", "{root}/data", "--recipe", "{root}/recipe.yaml"],
     "recipe.yaml: unknown key recipe.trian; did you mean recipe.train?"),
    ("train", [*TRAIN, "--data", "{root}/data", "--recipe", "nope"], "no recipe 'nope'"),
    ("train", [*TRAIN, "--data", "{root}/data", "--total-batch-size", "3"], "--total-batch-size 3 is not a multiple"),
    ("train", [*TRAIN, "--data", "{root}/data", "--val-list", "{root}/val_is_test.csv"], "--select-on-test"),
    ("train", [*TRAIN, "--data", "{root}/data", "--work-dir", "{root}/run"], "already holds a vidpeft-train run"),
    ("train", [*TRAIN, "--data", "{root}/data", "--resume"], "nothing to resume (no last.pt)"),
    ("train", [*TRAIN, "--data", "{root}/data", "--resume", "maybe"], "--resume takes no value or 'auto'"),
    ("train", ["--backbone", "videomae-z", "--data", "{root}/data"], "videomae-z"),
    ("train", [*TRAIN, "--data", "{root}/data", "--method", "lorra"], "lorra"),
    ("test", ["--work-dir", "{root}/run", "--frames", "7"], "--frames 7: videomae-micro needs a multiple of 2"),
    ("test", ["--work-dir", "{root}/run", "--clips", "0"], "--clips 0; must be at least 1"),
    ("test", ["--work-dir", "{root}/run", "--temporal", "middle"], "--temporal 'middle'; must be one of"),
    ("test", ["--work-dir", "{root}/run", "--batch-views", "0"], "--batch-views 0: must be at least 1"),
    ("test", ["--work-dir", "{root}/nowhere"], "{root}/nowhere: no such work dir"),
    ("test", ["--work-dir", "{root}/run", "--list", "{root}/none.csv"], "none.csv: no such annotation file"),
    ("predict", ["{root}/raw/nope.webm", "--work-dir", "{root}/run"], "nope.webm: no such video file"),
    ("predict", ["{video}", "--work-dir", "{root}/run", "--topk", "0"], "--topk 0: must be at least 1"),
    ("predict", ["{video}", "--work-dir", "{root}/run", "--frames", "7"], "--frames 7: videomae-micro needs a multiple"),
    ("predict", ["{video}", "--work-dir", "{root}/run", "--crops", "x"], "argument --crops: invalid int value: 'x'"),
    ("params", ["--backbone", "videomae-z"], "videomae-z"),
    ("params", ["--backbone", "videomae-micro", "--method", "lora", "--rank", "0"], "rank"),
    ("prep", ["ssv2", "--src", "{root}/nowhere"], "nowhere"),
    ("prep", ["ucf101", "--src", "{root}/raw"], "argument dataset: invalid choice: 'ucf101'"),
    ("sweep", ["{root}/grid.yaml", "--dry-run"], "unknown key 'methodz'"),
    ("sweep", ["{root}/none.yaml"], "none.yaml"),
    ("table", ["{root}/nowhere"], "{root}/nowhere: no such directory"),
    ("table", ["{root}/run", "--reference", "xyz"], "argument --reference: invalid choice: 'xyz'"),
    ("bench", ["--backbone", "videomae-micro", "--method", "lorra"], "lorra"),
    ("demo", ["--nope"], "unrecognized arguments: --nope"),
]


def _format(argv: list[str], root: Path) -> list[str]:
    video = next((root / "data").rglob("*.mp4"))
    return [a.format(root=root, video=video) for a in argv]


@pytest.mark.parametrize("script,argv,says", CASES, ids=[f"{c[0]}:{' '.join(c[1][-2:])}" for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(place, tmp_path, monkeypatch, capsys, script, argv, says):
    monkeypatch.chdir(tmp_path)  # a relative output (runs/, sweeps/) would land here
    work = tmp_path / "work"
    argv = _format(argv, place)
    if script == "train" and "--work-dir" not in argv:
        argv += ["--work-dir", str(work)]
    before = sorted(p.relative_to(place) for p in place.rglob("*"))
    main = importlib.import_module(f"vidpeft.cli.{script}").main
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert says.format(root=place) in err, err
    assert not work.exists() and list(tmp_path.iterdir()) in ([], [work])
    assert sorted(p.relative_to(place) for p in place.rglob("*")) == before  # nothing the user gave changed


def test_every_console_script_has_bad_input_cases():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    modules = {target.split(":")[0].rsplit(".", 1)[1] for target in scripts.values()}
    assert modules == {script for script, _, _ in CASES}


def test_plain_resume_on_an_unfinished_start_redoes_it_from_its_config(place, tmp_path, capsys):
    """--resume (plain) continues what config.yaml says; a start that never finished an epoch is redone."""
    work = tmp_path / "run"
    shutil.copytree(place / "run", work)
    for name in ("last.pt", "eval.json", "best", "log.csv"):
        path = work / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (work / "config.yaml").write_text((work / "config.yaml").read_text().replace(str(place / "run"), str(work)))
    assert train_cli.main(["--work-dir", str(work), "--resume"]) == 0
    assert "never finished an epoch: starting it again" in capsys.readouterr().out
    assert (work / "eval.json").is_file()

