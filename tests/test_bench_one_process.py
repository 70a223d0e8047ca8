"""vidpeft-bench --one-process (every case in one process, alternated rounds), its step ratios to
LoRA and its MFU, run through the CLI; the FLOP counts MFU rests on, against counts written out."""
from __future__ import annotations

import json
import statistics
import subprocess

import pytest
import torch
import torch.nn.functional as F

from vidpeft.bench.flops import count_flops, matrix_rate
from test_bench import bench_command

METHODS = ["full", "lora", "mona", "st-adapter"]


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench1")
    proc = subprocess.run([*bench_command(), "--one-process", "--quick", "--backbone", "videomae-micro",
                           "--method", *METHODS, "--repeats", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)  # a hang guard only
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, json.loads((out / "bench.json").read_text())


def test_one_process_ratios_are_medians_of_in_round_ratios(one_process_run):
    stdout, run = one_process_run
    assert run["one_process"] and "every case in one process" in stdout
    assert "times are medians of 3 after 2 warm-up" in stdout  # the first step, then an untimed round
    results = {(r["case"]["method"], r["case"]["impl"]): r for r in run["results"]}
    assert set(results) == {(m, "vidpeft") for m in METHODS} | {("lora", "transformers+peft")}
    lora, full = results[("lora", "vidpeft")], results[("full", "vidpeft")]
    for r in results.values():
        assert len(r["rounds"]["step"]) == len(r["rounds"]["infer"]) == 3
        assert r["step"]["median_s"] == pytest.approx(statistics.median(r["rounds"]["step"]))
        for ref, key in ((lora, "vs_lora"), (full, "vs_full")):
            in_round = [a / b for a, b in zip(r["rounds"]["step"], ref["rounds"]["step"])]
            assert r[key]["step"] == pytest.approx(statistics.median(in_round))
        assert r["peak_mb"] is None and "peak" not in r["vs_full"]  # one CPU process: no per-case memory
    line = next(x for x in stdout.splitlines() if x.startswith("videomae-micro: X step / LoRA step: "))
    for method in ("full", "mona", "st-adapter"):
        ratios = results[(method, "vidpeft")]["vs_lora"]
        assert f"{method} {ratios['step']:.2f}× (CPU time {ratios['step_cpu']:.2f}×)" in line
        in_round = [a / b for a, b in zip(results[(method, "vidpeft")]["rounds"]["step_cpu"], lora["rounds"]["step_cpu"])]
        assert ratios["step_cpu"] == pytest.approx(statistics.median(in_round))
    [peft] = run["comparisons"]["vs_transformers_peft"]  # paired from the same rounds
    theirs = results[("lora", "transformers+peft")]
    assert peft["step"] == pytest.approx(statistics.median(
        a / b for a, b in zip(lora["rounds"]["step"], theirs["rounds"]["step"])))
    assert "videomae-micro + lora, vidpeft / transformers+peft: step time" in stdout


def test_mfu_is_counted_flops_over_step_time_and_the_measured_matrix_rate(one_process_run):
    stdout, run = one_process_run
    assert run["matrix_dtype"] == "float32" and run["matrix_flops"] > 1e8
    assert f"/ {run['matrix_flops'] / 1e12:.2f} TFLOP/s (float32 matrix product measured here, the better" in stdout
    for r in run["results"]:
        assert r["mfu"] == pytest.approx(r["flops"] / r["step"]["median_s"] / run["matrix_flops"])
        assert r["mfu"] > 0  # (on a shared CPU a step can meet less load than the matrix product did)
        assert f"| {r['mfu']:.1%} |" in stdout
    flops = {r["case"]["method"]: r["flops"] for r in run["results"] if r["case"]["impl"] == "vidpeft"}
    # a frozen backbone skips weight gradients and the patch embedding's backward: fewer FLOPs than full
    assert flops["lora"] < flops["full"] and flops["st-adapter"] < flops["full"]


def test_flop_count_of_a_depthwise_convolution_counts_each_channel_once():
    x = torch.randn(2, 8, 5, 6, requires_grad=True)
    weight = torch.randn(8, 1, 3, 3, requires_grad=True)
    flops = count_flops(lambda: F.conv2d(x, weight, padding=1, groups=8).sum().backward())
    forward = 2 * 2 * 8 * 5 * 6 * 3 * 3  # 2 per multiply-add, batch, channels, outputs, taps
    assert flops == 3 * forward  # forward, input gradient, weight gradient


def test_flop_count_of_cpu_fused_attention_equals_the_written_out_products():
    q, k, v = (torch.randn(2, 3, 7, 4, requires_grad=True) for _ in range(3))
    fused = count_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    written = count_flops(lambda: ((q @ k.transpose(-1, -2) / 2).softmax(-1) @ v).sum().backward())
    product = 2 * 2 * 3 * 7 * 7 * 4  # 2 per multiply-add, batch, heads, rows, columns, head width
    assert written == 6 * product  # two products forward, two gradients of each backward
    assert fused == written + product  # as torch counts the CUDA kernels: the backward recomputes q·kᵀ


def test_matrix_rate_is_in_flop_per_second():
    rate = matrix_rate(torch.device("cpu"), torch.float32, seconds=0.2)
    assert 1e8 < rate < 1e14  # a CPU's fp32 rate, in FLOP/s
