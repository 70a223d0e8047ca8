"""Promises kept under faults and bad input, through the CLIs: exact resume with loader workers after
SIGKILL and SIGTERM, a checkpoint write that fails midway, failed starts, typos, Ctrl-C, divergence."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vidpeft.cli import prep as prep_cli
from vidpeft.cli import train as train_cli
from vidpeft.data.dataset import quiet_when_the_main_process_left
from vidpeft.synthetic import make_dataset

BIN = Path(sys.executable).parent
# LoRA dropout, drop path and mixup all draw random numbers in every step; 8 batches of 2 per epoch
TINY = ["--backbone", "videomae-micro", "--method", "lora", "--dropout", "0.2", "--drop-path", "0.2",
        "--set", "train.mixup=0.8", "--frames", "4", "--stride", "2", "--input-size", "32", "--batch-size", "2",
        "--optimizer", "adamw", "--lr", "1e-3", "--warmup-epochs", "1", "--clips", "1", "--crops", "1",
        "--amp", "none", "--val-list", "heldout.csv"]
EPOCHS = ["--epochs", "2"]


@pytest.fixture(scope="module", autouse=True)
def one_thread_as_the_subprocesses():
    """The interrupted runs are subprocesses with OMP_NUM_THREADS=1; in-process runs use one thread
    too, so that float reductions (e.g. the BatchNorm head's batch statistics) sum in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A prepared SSv2-layout set: 4 motion classes, 16 train / 8 val (= test) videos."""
    root = tmp_path_factory.mktemp("faults")
    make_dataset("ssv2", root / "raw", classes=4, per_class=6, size=(64, 48), frames=12, seed=3)
    assert prep_cli.main(["ssv2", "--src", str(root / "raw"), "--out", str(root / "data"), "--workers", "2",
                          "--no-progress", "--val-fraction", "0"]) == 0  # all 16 videos in train.csv
    # validation on videos the test list does not hold
    train_lines = (root / "data" / "train.csv").read_text().splitlines()
    (root / "data" / "heldout.csv").write_text("\n".join(train_lines[:4]) + "\n")
    return root / "data"


def log_rows(work: Path) -> list[tuple[str, str, str]]:
    with (work / "log.csv").open() as f:
        return [(r["epoch"], r["step"], r["train_loss"], r["val_top1"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """The uninterrupted run, with two loader workers."""
    work = tmp_path_factory.mktemp("reference") / "run"
    assert train_cli.main([*TINY, *EPOCHS, "--data", str(data), "--work-dir", str(work), "--num-workers", "2"]) == 0
    return work


def start(data: Path, work: Path) -> subprocess.Popen:
    # its own session: SIGTERM goes to the whole process group, loader workers included, as SLURM does
    return subprocess.Popen([str(BIN / "vidpeft-train"), *TINY, *EPOCHS, "--data", str(data), "--work-dir",
                             str(work), "--num-workers", "2"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_first_epoch(proc: subprocess.Popen, work: Path) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (work / "last.pt").is_file() and len(log_rows(work)) >= 1:
            return
        time.sleep(0.01)
    raise AssertionError(f"the run ended before it could be interrupted: {proc.stderr.read()}")


def resume(work: Path, capsys, *flags: str) -> str:
    capsys.readouterr()
    assert train_cli.main([*flags, "--work-dir", str(work), "--resume", *(["auto"] if flags else [])]) == 0
    return capsys.readouterr().out


def test_zero_or_two_workers_give_the_same_losses(data, reference, tmp_path):
    work = tmp_path / "w0"
    assert train_cli.main([*TINY, *EPOCHS, "--data", str(data), "--work-dir", str(work), "--num-workers", "0"]) == 0
    assert log_rows(work) == log_rows(reference)
    assert len({loss for _, _, loss, _ in log_rows(reference)}) == 2


def test_resume_after_sigkill_with_workers_is_exact(data, reference, tmp_path, capsys):
    work = tmp_path / "killed"
    proc = start(data, work)
    wait_for_first_epoch(proc, work)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "eval.json").exists()
    assert "resuming" in resume(work, capsys)
    assert log_rows(work) == log_rows(reference)
    assert (work / "eval.json").read_text() == (reference / "eval.json").read_text().replace(
        str(reference), str(work))


def test_sigterm_saves_mid_epoch_and_resume_is_exact(data, reference, tmp_path, capsys):
    work = tmp_path / "preempted"
    proc = start(data, work)
    wait_for_first_epoch(proc, work)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 75
    err = proc.stderr.read()
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("vidpeft-train: stopped by SIGTERM in epoch 2, after batch ")
    assert err.strip().endswith(f"continue with: vidpeft-train --work-dir {work} --resume")
    progress = torch.load(work / "last.pt", weights_only=True)["progress"]
    assert progress["epoch"] == 1 and 0 < progress["batch"] < 8, progress  # stopped inside epoch 2
    # the requeued job repeats its command with --resume auto
    requeued = resume(work, capsys, *TINY, *EPOCHS, "--data", str(data), "--num-workers", "2")
    assert f"at epoch 2, batch {progress['batch']}" in requeued
    assert log_rows(work) == log_rows(reference)


def test_a_checkpoint_write_failing_midway_keeps_the_previous_one(data, reference, tmp_path, monkeypatch):
    import vidpeft.engine.resume as checkpoint

    calls, real_save = [], torch.save

    def disk_full_on_second_save(obj, path):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise OSError(28, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(checkpoint.torch, "save", disk_full_on_second_save)
    work = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"):  # not bad input: it keeps its traceback
        train_cli.main([*TINY, *EPOCHS, "--data", str(data), "--work-dir", str(work), "--num-workers", "0"])
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert sorted(p.name for p in work.iterdir()) == ["best", "config.yaml", "last.pt", "log.csv"]  # no temp file
    assert torch.load(work / "last.pt", weights_only=True)["progress"]["epoch"] == 1
    assert train_cli.main(["--work-dir", str(work), "--resume"]) == 0
    assert log_rows(work) == log_rows(reference)


def test_outputs_are_0644_and_logs_hold_no_progress_bars(reference):
    for name in ("best/adapter.safetensors", "best/adapter.json", "last.pt", "config.yaml", "eval.json"):
        assert (reference / name).stat().st_mode & 0o777 == 0o644, name


def test_ctrl_c_is_one_line_saying_how_to_resume(data, tmp_path):
    work = tmp_path / "run"
    # SIGINT back to its default in the child: a test run started in the background of a non-interactive
    # shell (as CI may) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([str(BIN / "vidpeft-train"), *TINY, *EPOCHS, "--data", str(data), "--work-dir",
                             str(work), "--num-workers", "2"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_first_epoch(proc, work)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group, workers included
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"vidpeft-train: interrupted; continue with: vidpeft-train --work-dir "
                                        f"{work} --resume"]
    assert "\r" not in out + err  # no progress bar in a log that is not a terminal


def errors_raised_in(filename: str, *errors: BaseException) -> list[tuple]:
    """sys.exc_info() of each error as a thread's loop in `filename` catches it (multiprocessing's
    resource_sharer catches its own and passes them to sys.excepthook)."""
    source = "def serve(error):\n    try:\n        raise error\n    except BaseException:\n        return sys.exc_info()\n"
    namespace = {"sys": sys}
    exec(compile(source, filename, "exec"), namespace)
    return [namespace["serve"](error) for error in errors]


def test_a_worker_is_quiet_only_about_the_main_process_leaving_mid_handshake():
    """The worker's hook drops a broken connection in multiprocessing's resource_sharer (the main
    process ended by Ctrl-C while fetching a batch: the Ctrl-C test's stray traceback) and passes
    every other error on, that one raised elsewhere too."""
    sharer = str(Path(subprocess.__file__).parent / "multiprocessing" / "resource_sharer.py")
    lost = errors_raised_in(sharer, BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset"))
    kept = [*errors_raised_in(sharer, ValueError("a bug")), *errors_raised_in("/x/elsewhere.py", BrokenPipeError())]
    passed_on = []
    for info in lost + kept:
        quiet_when_the_main_process_left(lambda *args: passed_on.append(args), *info)
    assert passed_on == kept


def test_failed_starts_write_nothing_or_are_replaced(data, tmp_path, capsys):
    work = tmp_path / "run"
    for flag, value, allowed in (("--frames", "7", "multiple of 2 (e.g. 6 or 8)"),
                                 ("--input-size", "100", "multiple of 16 (e.g. 96 or 112)")):
        assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(work), flag, value]) == 2
        assert capsys.readouterr().err == f"error: {flag} {value}: videomae-micro needs a {allowed}\n"
        assert not work.exists()
    assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(work), "--set",
                           "train.warmup_epoch=5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown key train.warmup_epoch; did you mean train.warmup_epochs? known train keys: ")
    assert "train.warmup_epoch=" not in err  # the typo is never offered as the example
    assert err.count("\n") == 1 and not work.exists()

    # the loss blows up in epoch 1: one line naming where; the run leaves no state to resume
    assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(work), "--lr", "1e30", "--num-workers",
                           "0", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: epoch 1, batch ") and "No checkpoint was saved yet" in err and err.count("\n") == 1
    assert sorted(p.name for p in work.iterdir()) == ["config.yaml", "log.csv"]
    # --resume starts such a run again from its config.yaml; a corrected command simply replaces it
    assert train_cli.main(["--work-dir", str(work), "--resume"]) == 1
    assert "never finished an epoch: starting it again" in capsys.readouterr().out
    assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(work), "--num-workers", "0",
                           "--epochs", "1", "--eval-every", "0"]) == 0
    assert [row[0] for row in log_rows(work)] == ["1"]


def test_total_batch_size_sets_accumulation_and_warnings(data, tmp_path, capsys):
    work = tmp_path / "run"
    assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(work), "--num-workers", "0",
                           "--epochs", "1", "--total-batch-size", "8", "--eval-every", "0",
                           "--resume", "auto"]) == 0  # nothing to resume: it starts
    out = capsys.readouterr().out
    assert "effective batch 8 = world size 1 x batch 2 x accumulation 4" in out
    assert "warning: no --pretrained checkpoint" in out
    assert "warning: 1 warm-up epochs with 1 epochs: the learning rate never leaves the warm-up" in out
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    assert cfg["resolved"] == {"world_size": 1, "batch_size": 2, "accumulation": 4, "effective_batch_size": 8,
                               "lr": 1e-3, "precision": "float32",  # --amp none, whatever the CPU
                               "num_workers": 0, "compile": False,  # --num-workers 0; compile: auto, off on CPU
                               "device_augment": False}  # auto, off on CPU
    assert log_rows(work)[0][1] == "2"  # 8 batches of 2 = 2 optimiser steps of 8 clips
    assert train_cli.main([*TINY, "--data", str(data), "--work-dir", str(tmp_path / "b"),
                           "--total-batch-size", "7"]) == 2
    assert "--total-batch-size 7 is not a multiple of world size 1 x --batch-size 2" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(data, tmp_path, monkeypatch):
    import vidpeft.engine.setup as engine

    def broken(*args, **kwargs):
        raise KeyError("batch_size")

    monkeypatch.setattr(engine, "build_optimizer", broken)
    with pytest.raises(KeyError, match="batch_size"):
        train_cli.main([*TINY, "--data", str(data), "--work-dir", str(tmp_path / "run")])


def test_the_specified_usage_lines_work_in_a_fresh_folder(tmp_path, monkeypatch, capsys):
    """`vidpeft-prep ssv2 --src raw/` then `vidpeft-train --backbone B --method bapat` (micro, tiny)."""
    make_dataset("ssv2", tmp_path / "raw", classes=2, per_class=4, size=(64, 48), frames=8, seed=5)
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(["--backbone", "videoswin-micro", "--method", "bapat"]) == 2
    assert "no dataset prepared under data/" in capsys.readouterr().err
    assert prep_cli.main(["ssv2", "--src", "raw/"]) == 0
    assert (tmp_path / "data" / "ssv2" / "train.csv").is_file()
    tiny = ["--epochs", "1", "--frames", "4", "--input-size", "32", "--batch-size", "4", "--num-workers", "0",
            "--clips", "1", "--crops", "1", "--warmup-epochs", "0"]
    capsys.readouterr()
    assert train_cli.main(["--backbone", "videoswin-micro", "--method", "bapat", *tiny]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--data data/ssv2 (the prepared dataset under data/)\n"
                          "work dir: runs/videoswin-micro-bapat-ssv2\n")
    assert (tmp_path / "runs" / "videoswin-micro-bapat-ssv2" / "eval.json").is_file()
    (tmp_path / "data" / "k400").mkdir()
    (tmp_path / "data" / "k400" / "prep_report.json").write_text("{}")
    assert train_cli.main(["--backbone", "videoswin-micro", "--method", "bapat", *tiny]) == 2
    assert capsys.readouterr().err == ("error: no --data given and 2 datasets under data/ (data/k400, data/ssv2); "
                                       "choose one with --data\n")


def test_bench_checks_its_optional_packages_before_measuring(monkeypatch, capsys, tmp_path):
    from vidpeft.cli import bench as bench_cli

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the bench extra were not installed
    started = time.perf_counter()
    assert bench_cli.main(["--quick", "--no-peft", "--out", str(tmp_path / "bench")]) == 2
    assert time.perf_counter() - started < 30 and not (tmp_path / "bench").exists()
    assert capsys.readouterr().err == "error: vidpeft-bench needs matplotlib: pip install 'vidpeft[bench]'\n"
