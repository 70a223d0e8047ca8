"""vidpeft-bench --quick, run once as a user would: table, bench.json and bench.png for every
method on both micro backbones. No timing assertions: only what does not depend on load."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from vidpeft.bench.worker import PEFT_EQUIVALENTS
from vidpeft.methods import METHODS as REGISTERED

METHODS = ["full"] + [m for m in REGISTERED.names() if m != "full"]
BACKBONES = ["videomae-micro", "videoswin-micro"]


def runs_on(backbone: str, method: str) -> bool:
    """A method that cannot run on a backbone says so in attach; the bench leaves that pair out."""
    import torch

    import vidpeft

    try:
        with torch.device("meta"):
            vidpeft.build_model(backbone, method, 2)
    except ValueError:
        return False
    return True


def bench_command() -> list[str]:
    script = shutil.which("vidpeft-bench", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "vidpeft.cli.bench"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([*bench_command(), "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=1800)  # a hang guard, not a timing assertion: the machine may be busy
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, json.loads((out / "bench.json").read_text()), out / "bench.png"


def by_case(run: dict) -> dict[tuple[str, str, str], dict]:
    return {(r["case"]["backbone"], r["case"]["method"], r["case"]["impl"]): r for r in run["results"]}


def test_every_method_and_backbone_is_measured(quick_run):
    stdout, run, _ = quick_run
    results = by_case(run)
    expected = {(b, m, "vidpeft") for b in BACKBONES for m in METHODS if runs_on(b, m)} | {
        ("videomae-micro", m, "transformers+peft") for m in PEFT_EQUIVALENTS}
    assert set(results) == expected
    assert not [r for r in run["results"] if "error" in r]
    for backbone, method, _ in expected:
        assert f"| {backbone} | {method}" in stdout
    for method in PEFT_EQUIVALENTS:
        assert f"| videomae-micro | {method} (transformers+peft) |" in stdout
    assert "load average" in stdout


def test_fields_are_sane(quick_run):
    _, run, _ = quick_run
    for (backbone, method, impl), r in by_case(run).items():
        assert r["step"]["median_s"] > 0 and r["infer"]["median_s"] > 0
        assert r["peak_mb"] >= r["built_mb"] > 0
        # the optimiser holds exactly the trainable tensors, with AdamW's two moments each
        assert r["optimizer_params"] == r["trainable_with_head"]
        assert r["optimizer_state"] == 2 * r["trainable_with_head"]
        # nothing is kept for backward below the first module holding a trainable tensor
        assert r["saved_below_mb"] == 0
        assert r["adapter_bytes"] >= 4 * r["trainable_with_head"]
        if impl == "vidpeft":
            assert r["vs_full"]["peak"] == pytest.approx(r["peak_mb"] / by_case(run)[(backbone, "full", impl)]["peak_mb"])
        if method == "linear":
            assert r["trainable"] == 0
        else:
            assert r["trainable"] > 0


def test_peft_methods_cost_less_than_full_where_it_does_not_depend_on_load(quick_run):
    _, run, _ = quick_run
    results = by_case(run)
    for backbone in BACKBONES:
        full = results[(backbone, "full", "vidpeft")]
        assert full["vs_full"] == pytest.approx({k: 1.0 for k in full["vs_full"]})
        for method in (m for m in METHODS[1:] if runs_on(backbone, m)):
            r = results[(backbone, method, "vidpeft")]
            assert r["trainable"] < full["trainable"]
            assert r["adapter_bytes"] < full["adapter_bytes"]
            # on micro backbones prefix/BAPAT hidden layers (128) are wider than the blocks (16-128),
            # so only the methods that add no wide layer must keep fewer activations than full
            if method in ("linear", "bitfit", "lora", "adaptformer"):
                assert r["saved_mb"] < full["saved_mb"]


def test_comparisons(quick_run):
    stdout, run, _ = quick_run
    results = by_case(run)
    compared = {c["method"]: c for c in run["comparisons"]["vs_transformers_peft"]}
    assert set(compared) == set(PEFT_EQUIVALENTS) == {"lora", "dora", "norm"}
    for method, peft in compared.items():
        ours = results[("videomae-micro", method, "vidpeft")]
        theirs = results[("videomae-micro", method, "transformers+peft")]
        assert ours["trainable"] == theirs["trainable"]  # the same tensors trained (LoRA: rank and targets)
        assert peft["backbone"] == "videomae-micro" and peft["peak"] > 0
        # the step ratio is the median of the rounds' ratios, both models alternated in one process
        paired = theirs["paired"]
        assert len(paired["vidpeft"]) == len(paired["transformers+peft"]) == paired["rounds"] == run["repeats"]
        for key, name in (("median_s", "step"), ("cpu_s", "step_cpu")):
            in_round = [a[key] / b[key] for a, b in zip(paired["vidpeft"], paired["transformers+peft"])]
            assert peft[name] == pytest.approx(statistics.median(in_round))
        assert (f"videomae-micro + {method}, vidpeft / transformers+peft: step time {peft['step']:.2f}× "
                f"(CPU time {peft['step_cpu']:.2f}×; both in one process") in stdout
    merged = {m["backbone"]: m for m in run["comparisons"]["merged_lora"]}
    assert set(merged) == set(BACKBONES)
    for m in merged.values():
        assert m["max_abs_diff"] < 1e-4 and m["ratio"] > 0


def test_plot_is_a_png_with_a_panel_per_backbone(quick_run):
    _, _, png = quick_run
    import matplotlib.image

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    assert width > height > 200


def test_unknown_method_is_a_one_line_error(tmp_path):
    proc = subprocess.run([*bench_command(), "--method", "nope", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope" in proc.stderr
    assert not (tmp_path / "bench.json").exists()


def test_gpu_check_quick_runs_every_part_on_cpu(tmp_path):
    """benchmarks/gpu_check.sh --quick, the CPU form of the GPU check, as a user runs it: every
    part measured, every method of the bench in one process, each part's log and JSON under the
    output directory, and the summary in gpu_check.json holding each part's ratios."""
    script = Path(__file__).parents[1] / "benchmarks" / "gpu_check.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(script), "--quick", str(tmp_path / "check")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for part in ("== 1/6 vidpeft-bench, every method, one process", "== 1/6 vidpeft-bench, Mona-3D", "== 2/6 peers",
                 "== 3/6 grid adapters", "== 4/6 data loader", "== 4/6 tests on the GPU", "== 5/6 --compile",
                 "== 6/6 grid forms compiled",
                 "vidpeft / transformers+peft",
                 "videomae-micro: X step / LoRA step: ", "vit inference, batch 4"):
        assert part in done.stdout
    check = tmp_path / "check"
    for log in ("bench.log", "bench_mona3d.log", "peers.log", "grid_ops.log", "grid_ops_compiled.log", "data_speed.log",
                "gpu_tests.log",
                "compile.log"):
        assert (check / log).stat().st_size > 0
    report = json.loads((check / "gpu_check.json").read_text())
    summary = report["summary"]
    assert summary["missing"] == [] and summary["failed"] == []
    assert report["bench"]["one_process"] and report["bench"]["amp"] == "bf16"
    expected = {f"{b} {m}" for b in ("videomae-micro", "clip-micro") for m in REGISTERED.names() if runs_on(b, m)}
    assert set(summary["step_vs_lora"]) == expected | {"videomae-micro mona-3d"}
    assert set(summary["mfu"]) == expected and all(v > 0 for v in summary["mfu"].values())
    assert {c["method"] for c in summary["vs_transformers_peft"]} == set(PEFT_EQUIVALENTS)
    assert all(c["step"] > 0 and c["step_cpu"] > 0 for c in summary["vs_transformers_peft"])
    assert summary["peers"]["vit"]["step_ratio"] > 0 and summary["peers"]["vit"]["infer_ratio"] > 0
    assert summary["peers"]["swin"]["step_ratio"] > 0
    forms = {r["case"]: r["forms"] for r in report["grid_ops"]["results"]}
    assert set(forms["st-adapter vit-b"]) == {"conv3d", "conv2d", "shifts"}
    assert set(forms["mona-2d vit-b"]) == {"conv3d", "conv2d", "conv3d-cl", "shifts"}
    compiled = {r["case"]: r["forms"] for r in report["grid_ops_compiled"]["results"]}
    assert set(compiled) == {"st-adapter vit-b", "mona-2d vit-b"}
    assert set(compiled["mona-2d vit-b"]) == {f"{f}{c}" for f in forms["mona-2d vit-b"] for c in ("", "+compile")}
    assert set(summary["fastest_grid_form"]["grid_ops_compiled"]) == set(compiled)
    assert set(summary["compile_ratio"]) == {"full", "lora"} and all(v > 0 for v in summary["compile_ratio"].values())
    assert set(summary["compiled_vs_full"]) == {"lora"} and all(v > 0 for v in summary["compiled_mfu"].values())
    assert summary["recompiled_after_evaluation"] == {"full": False, "lora": False}
    assert summary["gpu_tests"]["tests"] > 0 and summary["gpu_tests"]["failures"] == 0
    from vidpeft.engine.precision import native_cpu_bf16  # --amp auto resolves as vidpeft-train does
    assert report["compile"]["precision"] == ("bfloat16" if native_cpu_bf16() else "float32")
    assert summary["fastest_decoder"] in report["data"]["decoders"]["k400"]["0"]
    rates = report["data"]["decoders"]["k400"]["0"]
    assert all(rates[d] > 0 for d in rates if d != "ratio_to_first")
    if summary["vs_mmaction2"]:  # mmaction2 installed: our loader against its loader, 0 and 2 workers
        assert {"0", "2"} <= set(summary["vs_mmaction2"]["k400"]) and summary["vs_mmaction2"]["k400"]["0"]["ratio"] > 0
