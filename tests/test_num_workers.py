"""data.num_workers auto: the loader's workers follow the CPU cores of the process and the training
processes of the machine; resolved at start, printed, and recorded in config.yaml's `resolved:`."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from prep_helpers import tiny_motion_data
from vidpeft.cli import train as train_cli
from vidpeft.config.run import RunConfig
from vidpeft.data.config import MAX_AUTO_WORKERS, DataConfig, resolve_num_workers
from vidpeft.errors import UserError

TINY = ["--backbone", "videomae-micro", "--method", "linear", "--epochs", "1", "--frames", "4", "--stride", "2",
        "--input-size", "32", "--batch-size", "4", "--clips", "1", "--crops", "1", "--eval-every", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tiny_motion_data(tmp_path_factory.mktemp("workers"))


def machine(monkeypatch, cores: int, processes: int | None) -> None:
    """This process may run on `cores` CPUs; torchrun started `processes` training processes here."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cores)))
    if processes is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))


def test_train_resolves_auto_workers_prints_and_records_them(data, tmp_path, capsys, monkeypatch):
    machine(monkeypatch, cores=6, processes=3)  # 6 cores shared by 3 training processes: 2 workers each
    work = tmp_path / "run"
    assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(work)]) == 0
    out = capsys.readouterr().out
    assert "loader: 2 worker(s) per training process (auto: CPU cores / training processes on this machine)" in out
    written = yaml.safe_load((work / "config.yaml").read_text())
    assert written["data"]["num_workers"] == "auto"  # a resume on another machine resolves it there
    assert written["resolved"]["num_workers"] == 2
    assert RunConfig.read(work / "config.yaml").data.num_workers is None


def test_num_workers_flag_wins_over_auto(data, tmp_path, capsys, monkeypatch):
    machine(monkeypatch, cores=6, processes=None)
    work = tmp_path / "run"
    assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(work), "--num-workers", "0"]) == 0
    assert "loader: 0 worker(s) per training process (data.num_workers)" in capsys.readouterr().out
    written = yaml.safe_load((work / "config.yaml").read_text())
    assert written["data"]["num_workers"] == 0 and written["resolved"]["num_workers"] == 0


@pytest.mark.parametrize("cores, processes, expected", [
    (16, None, 16), (16, 8, 2), (16, 2, 8), (2, 8, 1), (1, None, 1), (64, None, MAX_AUTO_WORKERS), (64, 2, 16),
])
def test_auto_rule(monkeypatch, cores, processes, expected):
    machine(monkeypatch, cores, processes)
    assert resolve_num_workers(None) == expected
    assert resolve_num_workers(3) == 3


def test_recipe_values():
    assert DataConfig.from_recipe({"data": {"num_workers": "auto"}}).num_workers is None
    assert DataConfig.from_recipe({"data": {"num_workers": 4}}).num_workers == 4
    assert DataConfig().sections()["data"]["num_workers"] == "auto"
    with pytest.raises(UserError, match="data.num_workers: -1; must be >= 0 or auto"):
        DataConfig(num_workers=-1)
    with pytest.raises(UserError, match="data.num_workers: 'many' is not a valid int"):
        DataConfig.from_recipe({"data": {"num_workers": "many"}})
