"""benchmarks/reproduce.sh: its rows, and dry-run commands that vidpeft-train accepts."""
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from vidpeft.cli import train as train_cli

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_list_has_every_published_row():
    rows = [line.split() for line in run("--list").stdout.splitlines()[1:]]
    assert len(rows) == 24  # V-PETL: 4 ViT-B + 7 Swin-B methods x SSv2/HMDB51; VideoMAE K400, SSv2
    published = {row[0]: float(row[-1]) for row in rows}
    assert published["vpetl-swin-bapat-ssv2"] == 53.36 and published["videomae-k400"] == 81.5


@pytest.mark.parametrize("row, expected", [
    ("vpetl-vit-adaptformer-ssv2", ["--recipe", "vpetl", "--dataset", "ssv2", "--batch-size", "16",
                                    "--accumulation", "8", "--eval-every", "0", "--train-list", "train_all.csv"]),
    ("videomae-k400", ["--recipe", "videomae", "--dataset", "k400", "--batch-size", "6", "--accumulation", "8",
                       "--eval-every", "0", "--train-list", "train_all.csv", "--test-list", "val.csv"]),
])
def test_dry_run_prints_a_command_vidpeft_train_accepts(tmp_path, row, expected):
    (tmp_path / "prep_report.json").write_text(json.dumps({"test_list": "test.csv"}))
    (tmp_path / "train_all.csv").write_text("")
    done = run(row, "--data", str(tmp_path), "--pretrained", "p.pth", "--work-dir", str(tmp_path / "w"),
               "--gpus", "8", "--dry-run")
    assert done.returncode == 0, done.stderr
    [command] = [shlex.split(line[2:]) for line in done.stdout.splitlines() if line.startswith("+ torchrun")]
    train_args = command[command.index("vidpeft.cli.train") + 1:]
    assert " ".join(expected) in " ".join(train_args)
    args = train_cli.build_parser().parse_args(train_args)
    assert (args.backbone, args.pretrained) == ("videomae-b", "p.pth")


def test_bad_use_is_a_one_line_error(tmp_path):
    assert run("nope").returncode == 2 and "unknown row 'nope'" in run("nope").stderr
    missing = run("videomae-ssv2", "--data", str(tmp_path / "x"), "--pretrained", "p", "--work-dir", "w")
    assert missing.returncode == 2 and "give --raw" in missing.stderr
