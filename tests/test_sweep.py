"""vidpeft-sweep: grids expand from the registries, scripts hold exactly the cells, and a real sweep
interrupted after its first cell finishes the rest on rerun without rerunning a finished cell."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prep_helpers import tiny_motion_data

from vidpeft.backbones import BACKBONES
from vidpeft.cli import sweep as sweep_cli
from vidpeft.methods import METHODS
from vidpeft.methods.base import Method, MethodConfig
from vidpeft.sweep import load_grid

MICRO = ["videomae-micro", "videoswin-micro"]
TINY = {"epochs": 5, "frames": 4, "stride": 2, "input-size": 32, "num-workers": 0, "batch-size": 4,
        "clips": 1, "crops": 1}


def sweep_command() -> list[str]:
    script = shutil.which("vidpeft-sweep", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "vidpeft.cli.sweep"]


def write_grid(path: Path, **spec) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def refusing_method(monkeypatch):
    """A registered method that cannot attach to Video Swin, as a real one raises it."""
    def attach(model, cfg):
        if model.family == "videoswin":
            raise ValueError("refuses: needs a class token, which Video Swin has not")

    monkeypatch.setitem(METHODS._items, "refuses", Method("refuses", MethodConfig, attach, "test"))
    return "refuses"


def test_grid_expands_every_registered_method_and_records_refusals(tmp_path, refusing_method):
    grid = load_grid(str(write_grid(tmp_path / "g.yaml", root=str(tmp_path / "sweep"), backbones=MICRO,
                                    methods=["all", {"lora": [{"rank": 4}]}], seeds=[0, 1],
                                    datasets={"motion": "data/motion"}, train=TINY)))
    methods = METHODS.names()
    assert refusing_method in methods
    assert len(grid.cells) == len(MICRO) * (len(methods) + 1) * 2
    expected = {(b, m, s) for b in MICRO for m in methods for s in (0, 1)}
    assert {(c.backbone, c.method, c.seed) for c in grid.cells if not c.options} == expected
    refused = {(c.backbone, c.method): c.refused for c in grid.cells if c.refused}
    assert ("videomae-micro", refusing_method) not in refused  # registered methods may refuse too (aim)
    assert "needs a class token" in refused[("videoswin-micro", refusing_method)]
    lora4 = next(c for c in grid.cells if c.options == {"rank": 4})
    assert lora4.name == "motion__videomae-micro__lora-rank4__seed0"
    assert lora4.argv[:2] == ["vidpeft-train", "--backbone"] and "--rank" in lora4.argv
    assert lora4.work_dir == tmp_path / "sweep" / lora4.name
    ddp = load_grid(str(tmp_path / "g.yaml"), nproc_per_node=2).cells[0].argv
    assert ddp[:6] == ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "vidpeft.cli.train"]
    assert ddp[6:] == grid.cells[0].argv[1:]


def case_lines(script: str) -> list[list[str]]:
    return [shlex.split(m.group(1)) for m in re.finditer(r"^  \d+\) run_cell (.*) ;;$", script, re.M)]


def test_slurm_array_and_shell_script_hold_exactly_the_cells(tmp_path, refusing_method, capsys):
    grid_file = write_grid(tmp_path / "g.yaml", root=str(tmp_path / "sweep"), backbones=MICRO,
                           methods=["linear", "lora", refusing_method], seeds=[0, 1],
                           datasets={"motion": str(tmp_path / "data")}, train=TINY,
                           slurm={"partition": "gpu", "time": "1:00:00"})
    assert sweep_cli.main([str(grid_file), "--emit", "slurm"]) == 0
    script = (tmp_path / "sweep" / "sweep.sbatch").read_text()
    cells = load_grid(str(grid_file)).runnable
    assert len(cells) == 2 * 3 * 2 - 2  # the refusing method on Video Swin, both seeds
    assert f"#SBATCH --array=0-{len(cells) - 1}\n" in script
    assert "#SBATCH --partition=gpu\n" in script and "#SBATCH --time=1:00:00\n" in script
    assert case_lines(script) == [[str(c.work_dir), *c.argv] for c in cells]
    assert "refused (not run): motion__videoswin-micro__refuses__seed0: refuses: needs a class token" in script
    assert subprocess.run(["bash", "-n", str(tmp_path / "sweep" / "sweep.sbatch")]).returncode == 0

    # the array script run as SLURM would, with a stand-in vidpeft-train that records its arguments
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vidpeft-train").write_text('#!/usr/bin/env bash\necho "$@" >> "$CALLS"\n')
    (bin_dir / "vidpeft-train").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls")}
    cells[1].work_dir.mkdir(parents=True)
    (cells[1].work_dir / "last.pt").write_bytes(b"")  # interrupted: resumes
    cells[2].work_dir.mkdir(parents=True)
    (cells[2].work_dir / "eval.json").write_text("{}")  # finished: skipped
    for index in range(3):
        subprocess.run(["bash", str(tmp_path / "sweep" / "sweep.sbatch")], check=True, capture_output=True,
                       env={**env, "SLURM_ARRAY_TASK_ID": str(index)})
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [shlex.join(cells[0].argv[1:]), shlex.join(cells[1].argv[1:] + ["--resume"])]

    assert sweep_cli.main([str(grid_file), "--emit", "shell"]) == 0
    shell = (tmp_path / "sweep" / "sweep.sh").read_text()
    assert re.findall(r"^run_cell (.*) \|\| failed", shell, re.M) == [
        f"{shlex.quote(str(c.work_dir))} {shlex.join(c.argv)}" for c in cells]
    assert subprocess.run(["bash", "-n", str(tmp_path / "sweep" / "sweep.sh")]).returncode == 0
    capsys.readouterr()


@pytest.mark.parametrize("spec, message", [
    ({"methodz": "all"}, "unknown key 'methodz'"),
    ({"methods": ["loar"]}, "unknown method 'loar'"),
    ({"methods": [{"lora": {"rnak": 4}}]}, "has no option rnak"),
    ({"train": {"epoch": 3}}, "vidpeft-train has no option --epoch"),
    ({"train": {"seed": 3}}, "train.seed: the sweep sets --seed itself"),
    ({"train": {"epochs": "many"}}, "invalid int value: 'many'"),
])
def test_grid_mistakes_get_one_line_errors(tmp_path, capsys, spec, message):
    grid = {"backbones": ["videomae-micro"], "methods": ["lora"], "datasets": {"d": "data"}, **spec}
    assert sweep_cli.main([str(write_grid(tmp_path / "g.yaml", **grid)), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "g.yaml" in err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tiny_motion_data(tmp_path_factory.mktemp("sweep"))


def statuses(root: Path) -> dict[str, str]:
    return {c["name"]: c["status"] for c in json.loads((root / "sweep.json").read_text())["cells"]}


def pending(pid: int, signum: int) -> bool:
    """Whether `signum` waits to be delivered to process `pid` (a stopped one keeps it pending)."""
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    return any(int(status[key], 16) >> (signum - 1) & 1 for key in ("SigPnd", "ShdPnd"))


def test_interrupted_sweep_finishes_on_rerun_and_reports_failed_cells(data, tmp_path):
    root = tmp_path / "sweep"
    grid = write_grid(tmp_path / "g.yaml", root=str(root), backbones=["videomae-micro"], methods=["linear", "lora"],
                      datasets={"good": str(data), "missing": str(tmp_path / "no-such-data")}, train=TINY)
    first, second, *failing = [c.name for c in load_grid(str(grid)).cells]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sweep = subprocess.Popen([*sweep_command(), str(grid)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and sweep.poll() is None and not (root / second / "last.pt").is_file():
        time.sleep(0.02)
    assert sweep.poll() is None, sweep.communicate()
    # the interrupt lands at a known point however fast the machine: the cell is frozen inside its run,
    # the sweep is interrupted and passes SIGINT on; only then does the cell go on, and meets it at once
    [cell] = (Path(f"/proc/{sweep.pid}/task/{sweep.pid}/children").read_text().split())
    os.kill(int(cell), signal.SIGSTOP)
    sweep.send_signal(signal.SIGINT)
    while time.time() < deadline and not pending(int(cell), signal.SIGINT):
        time.sleep(0.02)
    os.kill(int(cell), signal.SIGCONT)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, (out, err)
    assert statuses(root) == {first: "done", second: "interrupted", failing[0]: "pending", failing[1]: "pending"}
    assert not (root / second / "eval.json").exists()
    finished = (root / first / "eval.json").stat().st_mtime_ns

    rerun = subprocess.run([*sweep_command(), str(grid), "--follow"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 1, rerun.stderr  # the missing dataset's cells failed; the others finished
    assert f"{first}: finished already, not rerun" in rerun.stdout
    assert f"{second}: resuming from last.pt" in rerun.stdout
    assert (root / first / "eval.json").stat().st_mtime_ns == finished
    epochs = [line.split(",")[0] for line in (root / second / "log.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2", "3", "4", "5"]
    assert "resuming" in (root / "logs" / f"{second}.log").read_text()
    assert "unreadable: 0; checkpoint" in rerun.stdout  # --follow: vidpeft-train's own summary line
    assert statuses(root) == {first: "finished-already", second: "done", failing[0]: "failed", failing[1]: "failed"}
    for name in failing:
        assert re.search(rf"^failed: {name}: error: .*no-such-data: no such data folder", rerun.stdout, re.M)
    assert "4 cells: 1 run (1 resumed), 1 finished already, 2 failed" in rerun.stdout


def test_finished_cells_are_never_rerun_even_when_the_grid_changed(tmp_path, capsys):
    from vidpeft.sweep import run_grid

    spec = dict(root=str(tmp_path / "sweep"), backbones=["videomae-micro"], methods=["linear"],
                datasets={"d": str(tmp_path / "data")}, train=TINY)
    cell = load_grid(str(write_grid(tmp_path / "g.yaml", **spec))).cells[0]
    cell.work_dir.mkdir(parents=True)
    (cell.work_dir / "eval.json").write_text('{"top1": 61.5}')
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps({"cells": [{"name": cell.name, "command": "old"}]}))
    [(_, outcome)] = run_grid(load_grid(str(tmp_path / "g.yaml")))
    assert outcome.status == "finished-already" and outcome.top1 == 61.5
    assert "recorded command differs" in outcome.reason and "not rerun" in capsys.readouterr().out
    assert statuses(tmp_path / "sweep") == {cell.name: "finished-already"}
