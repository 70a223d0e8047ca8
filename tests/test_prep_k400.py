"""vidpeft-prep k400 end to end: both layouts, both val CSV names, broken files, resume, kill -9."""
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest
from prep_helpers import (WILD_DIR, check_outputs, probe_video, read_list, run_prep,
                          tree_hashes)

from vidpeft.labels import label_map
from vidpeft.synthetic import make_dataset


def expected_lists(videos):
    return {split: sorted((f"videos/{split}/{v.path.stem}.mp4", v.label) for v in videos
                          if v.split == split) for split in ("train", "val", "test")}


@pytest.mark.parametrize("flat,val_name", [(False, "validate"), (True, "val")],
                         ids=["class-folders+validate.csv", "flat+val.csv"])
def test_k400_end_to_end(tmp_path, capsys, flat, val_name):
    src, out = tmp_path / WILD_DIR, tmp_path / "-out #2"
    videos = make_dataset("k400", src, classes=2, per_class=3, size=(160, 96), frames=6,
                          wild_names=True, k400_flat=flat, k400_val_name=val_name)
    assert (src / "annotations" / f"{val_name}.csv").exists()
    if not flat:  # class folders with spaces, parentheses and an apostrophe
        assert (src / "train" / "massaging person's head").is_dir()
    assert any(v.path.name.startswith("-") for v in videos)
    assert probe_video(videos[0].path).audio == 1
    before = tree_hashes(src)

    code, report, text = run_prep(capsys, "k400", "--src", str(src), "--out", str(out))

    assert code == 0, text
    assert (report["converted"], report["failed"], report["missing"]) == (6, [], [])
    expected = expected_lists(videos)
    for split in ("train", "val", "test"):
        assert sorted(read_list(out / f"{split}.csv")) == expected[split], split
    assert (out / "labels.txt").read_text().splitlines() == label_map("k400")
    rows = [row for rows in expected.values() for row in rows]
    check_outputs(out, rows, short_side=320, height=None, frames=6, fps=Fraction(30))
    assert probe_video(out / rows[0][0]).width == 534  # 160x96 -> 533.3x320 -> even
    assert tree_hashes(src) == before


def test_k400_broken_and_missing_files_are_reported(tmp_path, capsys):
    src, out = tmp_path / "raw", tmp_path / "out"
    videos = make_dataset("k400", src, classes=1, per_class=7, size=(128, 96), frames=4)
    corrupt, empty, gone, truncated, text = (v.path for v in videos[:5])
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[:40] + bytes(len(data) - 40))  # header kept, body zeroed
    empty.write_bytes(b"")
    gone.unlink()
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    text.write_text("<html>404 Not Found</html>\n")  # what some failed downloads hold
    before = tree_hashes(src)

    code, report, output = run_prep(capsys, "k400", "--src", str(src), "--out", str(out))

    assert code == 1
    failed = {f["path"]: f["reason"] for f in report["failed"]}
    assert set(failed) == {str(corrupt), str(empty), str(truncated), str(text)}
    assert "0 bytes" in failed[str(empty)]
    assert report["missing"] == [f"train.csv:4: {gone.stem}"]
    assert report["converted"] == len(videos) - 5
    listed = "".join((out / f"{s}.csv").read_text() for s in ("train", "val", "test"))
    assert listed.count("\n") == len(videos) - 5
    for bad in (corrupt, empty, gone, truncated, text):
        assert bad.stem not in listed
        assert not list(out.rglob(f"*{bad.stem}*"))
    assert f"failed: {corrupt}" in output and "1 missing" in output
    assert tree_hashes(src) == before


def test_k400_resume_skips_finished_outputs(tmp_path, capsys):
    src, out = tmp_path / "raw", tmp_path / "out"
    videos = make_dataset("k400", src, classes=2, per_class=2, size=(128, 96), frames=4)
    code, report, _ = run_prep(capsys, "k400", "--src", str(src), "--out", str(out))
    assert (code, report["converted"]) == (0, 4)
    done = sorted(out.rglob("*.mp4"))
    stamps = {p: p.stat().st_mtime_ns for p in done}
    done[0].unlink()

    code, report, text = run_prep(capsys, "k400", "--src", str(src), "--out", str(out))

    assert (code, report["converted"], report["skipped"]) == (0, 1, 3)
    assert "1 converted, 3 skipped" in text
    assert all(p.stat().st_mtime_ns == stamps[p] for p in done[1:])
    # no labelled test.csv: test.csv is the validate list; one video per class leaves none to hold out
    assert len(read_list(out / "train.csv")) + len(read_list(out / "test.csv")) == len(videos)
    assert read_list(out / "val.csv") == [] and read_list(out / "train_all.csv") == read_list(out / "train.csv")


def test_k400_kill_9_leaves_no_partial_output_and_rerun_completes(tmp_path):
    src, out = tmp_path / "raw", tmp_path / "out"
    videos = make_dataset("k400", src, classes=2, per_class=5, size=(192, 144), frames=48)
    cli = Path(sys.executable).with_name("vidpeft-prep")
    cmd = [str(cli), "k400", "--src", str(src), "--out", str(out), "--workers", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list((out / "videos").rglob("*.mp4")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole group: main process and its worker
    proc.wait()
    finished = list((out / "videos").rglob("*.mp4"))
    assert 0 < len(finished) < len(videos), "the kill should land mid-run"
    for p in finished:  # a final name only ever holds a complete video
        assert probe_video(p).frames == 48
    assert not json.loads((out / "prep_report.json").read_text())["finished"]

    result = subprocess.run(cmd, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    report = json.loads((out / "prep_report.json").read_text())
    assert report["skipped"] >= len(finished)
    assert report["converted"] + report["skipped"] == len(videos)
    assert not [p for p in out.rglob("*") if ".part-" in p.name]  # stale temp files removed
    assert sum(1 for _ in out.rglob("*.mp4")) == len(videos)
