"""Shared checks for the vidpeft-prep tests: run the CLI, probe outputs, hash sources."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vidpeft.cli.prep import main as prep_main

# Characters the issue asks for, in folder names the tests create.
WILD_DIR = "-raw data #1 (x)&y's!"


@dataclass
class Probed:
    codec: str
    pix_fmt: str
    width: int
    height: int
    frames: int
    fps: Fraction
    audio: int


def probe_video(path: Path) -> Probed:
    """Decode every frame with PyAV (independently of vidpeft's own probe)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return Probed(s.codec_context.name, s.codec_context.pix_fmt, s.codec_context.width,
                      s.codec_context.height, frames, Fraction(s.average_rate),
                      len(c.streams.audio))


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_prep(capsys, *argv: str) -> tuple[int, dict, str]:
    """vidpeft-prep in-process; returns exit status, the report (if any) and stdout+stderr."""
    code = prep_main([*argv, "--no-progress"])
    captured = capsys.readouterr()
    out = Path(argv[argv.index("--out") + 1])
    report_file = out / "prep_report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return code, report, captured.out + captured.err


def read_list(path: Path) -> list[tuple[str, int]]:
    """`<path> <label>` lines, split on the last space (paths may contain spaces)."""
    rows = []
    for line in path.read_text().splitlines():
        name, label = line.rsplit(" ", 1)
        rows.append((name, int(label)))
    return rows


def check_outputs(out: Path, rows: list[tuple[str, int]], short_side: int | None,
                  height: int | None, frames: int, fps: Fraction) -> None:
    """Every listed video: H.264 yuv420p, even size, no audio, same frames / fps as the source."""
    assert rows
    for rel, _ in rows:
        p = probe_video(out / rel)
        assert (p.codec, p.pix_fmt, p.audio) == ("h264", "yuv420p", 0), rel
        assert p.width % 2 == 0 and p.height % 2 == 0, rel
        if short_side is not None:
            assert min(p.width, p.height) == short_side, rel
        if height is not None:
            assert p.height == height, rel
        assert (p.frames, p.fps) == (frames, fps), rel


def tiny_motion_data(root: Path) -> Path:
    """A prepared Kinetics-layout set of 2 motions x 5 tiny videos (separate val and test lists)."""
    from vidpeft.synthetic import make_dataset

    make_dataset("k400", root / "raw", classes=2, per_class=5, size=(64, 48), frames=8, seed=1, plain=True)
    assert prep_main(["k400", "--src", str(root / "raw"), "--out", str(root / "data"), "--short-side", "0",
                      "--no-progress"]) == 0
    return root / "data"
