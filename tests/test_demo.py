"""vidpeft-demo (README set-up command 1), small, through its console script."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from vidpeft.cli.demo import SOURCE_MOTIONS, TARGET_MOTIONS

BIN = Path(sys.executable).parent
TINY = ["--source-per-class", "3", "--per-class", "3", "--source-epochs", "1", "--epochs", "1"]


def test_demo_runs_every_step_and_reports_top1(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([str(BIN / "vidpeft-demo"), "--out", str(out), *TINY],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = [line.split()[1:3] for line in proc.stdout.splitlines() if line.startswith("$ ")]
    methods = [s[1] for s in steps]
    assert [s[0] for s in steps] == ["vidpeft-prep", "vidpeft-prep", "vidpeft-train", "vidpeft-train", "vidpeft-test"]
    assert methods[:2] == ["k400", "ssv2"]
    # --help lists the steps in the order they run, with the class counts the demo makes
    help_text = subprocess.run([str(BIN / "vidpeft-demo"), "--help"], capture_output=True, text=True).stdout
    order = ["vidpeft-prep k400", "vidpeft-prep ssv2", "fully fine-tune", "train BAPAT", "vidpeft-test"]
    assert [help_text.index(text) for text in order] == sorted(help_text.index(text) for text in order)
    assert f"({len(SOURCE_MOTIONS)} motion classes)" in help_text and f"{len(TARGET_MOTIONS)} motion classes" in help_text
    summary = proc.stdout.strip().splitlines()[-1]
    match = re.match(r"vidpeft-demo: BAPAT on the generated SSv2 task: top-1 ([\d.]+)% on (\d+) test videos "
                     r"\(chance 25\.0%\), 2 clips x 3 crops", summary)
    assert match, summary

    with open(out / "target" / "test.csv", newline="", encoding="utf-8") as f:
        test_videos = list(csv.reader(f, delimiter=" "))
    result = json.loads((out / "runs" / "target-bapat" / "eval.json").read_text(encoding="utf-8"))
    assert int(match.group(2)) == result["videos"] == len(test_videos) > 0
    assert float(match.group(1)) == round(result["top1"], 1)
    assert (result["views"]["clips"], result["views"]["crops"]) == (2, 3) and result["unreadable"] == []
    assert result["checkpoint"] == str(out / "runs" / "target-bapat" / "best")
    # the BAPAT run starts from the demo's own full fine-tuning run, not from random weights
    assert re.search(r"source-full: vidpeft videomae-micro full fine-tuning run checkpoint, [1-9]\d* tensors loaded",
                     proc.stdout)
