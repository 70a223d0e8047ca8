"""vidpeft-table: PPT against hand-computed values and the published rows; the table, CSV, JSON and plot
built from run dirs. One real tiny training writes a run; copies of it with edited results stand for seeds,
views and backbones that would take hours to train."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from prep_helpers import tiny_motion_data

from vidpeft.cli import table as table_cli
from vidpeft.cli import train as train_cli
from vidpeft.table import load_reference, ppt


def test_ppt_hand_computed():
    # exp(-log10(P / 1e7 + 1)): P = 9e7 gives exp(-1), P = 1e7 gives exp(-log10 2) = 0.740056..., P = 0 gives 1
    assert ppt(50.0, 9e7) == pytest.approx(0.5 * 0.36787944117, rel=1e-9)
    assert ppt(80.0, 1e7) == pytest.approx(0.8 * 0.74005557, rel=1e-7)
    assert ppt(42.0, 0) == pytest.approx(0.42)
    # the example: AdaptFormer on ViT-B, 59.02 % with 1.19M trainable parameters
    assert ppt(59.02, 1.19e6) == pytest.approx(0.56207, abs=1e-5)
    assert round(ppt(59.02, 1.19e6), 2) == 0.56


def test_published_vpetl_rows_give_their_own_ppt():
    reference = load_reference("vpetl")
    checked = 0
    for row in reference["rows"]:
        for dataset in reference["datasets"]:
            published = row[dataset]["ppt"]
            if published is None:  # the benchmark prints none for full fine-tuning
                assert row["method"] == "full"
                continue
            assert round(ppt(row[dataset]["top1"], row["params_m"] * 1e6), 2) == published, (row, dataset)
            checked += 1
    assert checked == 18


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real finished vidpeft-train run (AdaptFormer on the micro VideoMAE, 1 epoch)."""
    root = tmp_path_factory.mktemp("table")
    work = root / "run"
    assert train_cli.main(["--backbone", "videomae-micro", "--method", "adaptformer", "--data",
                           str(tiny_motion_data(root)),
                           "--work-dir", str(work), "--epochs", "1", "--frames", "4", "--stride", "2",
                           "--input-size", "32", "--num-workers", "0", "--batch-size", "4", "--clips", "2",
                           "--crops", "3"]) == 0
    return work


def fake(run_dir: Path, dest: Path, *, top1: float, seed: int = 0, backbone: str | None = None,
         method: str | None = None, dataset: str | None = None, clips: int | None = None) -> Path:
    """A copy of the real run whose files say another seed / result / backbone / method / views."""
    shutil.copytree(run_dir, dest)
    result = json.loads((dest / "eval.json").read_text())
    result.update(top1=top1, top5=min(100.0, top1 + 10))
    if clips:
        result["views"]["clips"] = clips
    (dest / "eval.json").write_text(json.dumps(result))
    cfg = yaml.safe_load((dest / "config.yaml").read_text())
    cfg["train"]["seed"] = seed
    cfg["dataset"] = dataset or cfg["dataset"]
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg))
    spec = json.loads((dest / "best" / "adapter.json").read_text())
    if backbone or method:
        spec.update(backbone=backbone or spec["backbone"], method=method or spec["method"], options={})
    (dest / "best" / "adapter.json").write_text(json.dumps(spec))
    return dest


def table_rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 3:
            rows[" ".join(cells[:2]) + (f" {cells[3]}" if " crops" in cells[3] else "")] = cells
    return rows


def test_table_averages_seeds_and_keeps_other_views_apart(run_dir, tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for seed, top1 in enumerate([40.0, 50.0, 60.0]):
        fake(run_dir, sweep / f"af-seed{seed}", top1=top1, seed=seed)
    fake(run_dir, sweep / "af-1clip", top1=70.0, clips=1)
    fake(run_dir, sweep / "lora", top1=30.0, method="lora")
    assert table_cli.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    from vidpeft.model import build_model, count_parameters

    af = count_parameters(build_model("videomae-micro", "adaptformer", 7))["trainable"]
    lora = count_parameters(build_model("videomae-micro", "lora", 7))["trainable"]
    assert af > 0 and lora > 0 and af != lora
    rows = table_rows(out)
    three = rows["videomae-micro adaptformer 2 clips x 3 crops, temporal videomae"]
    assert three[2] == f"{af:,}"
    assert three[4] == "50.00 ± 10.00 (seeds 0, 1, 2)"  # sample std of 40, 50, 60
    assert three[6] == f"{ppt(50.0, af):.2f}"
    assert rows["videomae-micro adaptformer 1 clips x 3 crops, temporal videomae"][4] == "70.00"  # not averaged with the others
    assert "rows differ in views" in out
    assert "selection: best val epoch" in out  # the k400 layout holds out a validation list

    with (sweep / "table.csv").open() as f:
        records = list(csv.DictReader(f))
    assert len(records) == 3
    by_views = {(r["method"], r["views"]): r for r in records}
    first = by_views[("adaptformer", "2 clips x 3 crops, temporal videomae")]
    assert float(first["top1_mean"]) == pytest.approx(50.0) and float(first["top1_std"]) == pytest.approx(10.0)
    assert first["seeds"] == "0 1 2" and int(first["trainable"]) == af
    data = json.loads((sweep / "table.json").read_text())
    assert {r["method"] for r in data["rows"]} == {"adaptformer", "lora"}
    assert (sweep / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_that_differ_in_more_than_the_seed_are_never_averaged(run_dir, tmp_path, capsys):
    """Seed 0 trained for 1, 1 and 3 epochs, with and without --pretrained: rows named by what differs;
    two runs of one configuration and seed are refused in one line."""
    runs = tmp_path / "runs"
    for name, top1, epochs, pretrained in (("a", 10.0, 1, None), ("b", 20.0, 3, None), ("c", 40.0, 3, "/ckpt.pth")):
        path = fake(run_dir, runs / name, top1=top1)
        cfg = yaml.safe_load((path / "config.yaml").read_text())
        cfg["train"]["epochs"], cfg["model"]["pretrained"] = epochs, pretrained
        (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert table_cli.main([str(runs)]) == 0
    out = capsys.readouterr().out
    cells = {line.split("|")[4].strip(): line.split("|")[5].strip() for line in out.splitlines()
             if line.startswith("| videomae-micro")}
    assert cells == {"model.pretrained=None, train.epochs=1": "10.00", "model.pretrained=None, train.epochs=3": "20.00",
                     "model.pretrained=/ckpt.pth, train.epochs=3": "40.00"}
    assert "rows differ in config" in out and "± " not in out.split("\n\n", 1)[1]
    shutil.copytree(runs / "a", runs / "a-again")
    assert table_cli.main([str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "are the same configuration with the same seed (0)" in err


def test_reference_puts_published_rows_next_to_ours(run_dir, tmp_path, capsys):
    # our run relabelled as ViT-B AdaptFormer on SSv2 (counted on the meta device: 1,189,632)
    runs = tmp_path / "runs"
    fake(run_dir, runs / "vitb-af", top1=60.02, backbone="videomae-b", dataset="ssv2")
    assert table_cli.main([str(runs), "--reference", "vpetl", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    row = next(cells for key, cells in table_rows(out).items() if key.startswith("videomae-b adaptformer"))
    assert row[2] == "1,189,632"
    assert row[3:8] == ["60.02", "70.02", f"{ppt(60.02, 1_189_632):.2f}", "59.02", "+1.00"]
    assert "| Video Swin-B (videoswin-b) | bapat | 6.18M | 53.36 | 0.43 | 71.93 | 0.58 |" in out
    assert "synbol/Parameter-Efficient-Transfer-Learning-Benchmark" in out  # the source is named
    records = json.loads((tmp_path / "out" / "table.json").read_text())["rows"]
    assert records[0]["reference_top1"] == 59.02 and records[0]["delta_top1"] == pytest.approx(1.0)


def test_bad_input_gets_one_line_errors(tmp_path, capsys):
    assert table_cli.main([str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert table_cli.main([str(tmp_path)]) == 2
    assert "no finished run here" in capsys.readouterr().err
