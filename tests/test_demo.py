"""vidpeft-demo (README set-up command 1), small, through its console script."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
TINY = ["--source-per-class", "3", "--per-class", "3", "--source-epochs", "1", "--epochs", "1"]


def test_demo_runs_every_step_and_reports_top1(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([str(BIN / "vidpeft-demo"), "--out", str(out), *TINY],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for step in ("$ vidpeft-prep k400", "$ vidpeft-prep ssv2", "$ vidpeft-train", "$ vidpeft-test"):
        assert step in proc.stdout
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
