"""Ratios to full fine-tuning, the Markdown tables and the plot of a vidpeft-bench run."""
from __future__ import annotations

import statistics
from pathlib import Path

from ..report import markdown_table, pyplot, save_png
from .worker import HF_PEFT

MB = 2**20


def reference(results: list[dict], backbone: str, method: str = "full") -> dict | None:
    """Our `method` (full fine-tuning by default) on `backbone` in this run, if it was measured."""
    return next((r for r in results if "error" not in r and r["case"]["impl"] == "vidpeft"
                 and r["case"]["backbone"] == backbone and r["case"]["method"] == method), None)


MEDIANS = {"step": ("step", "median_s"), "step_cpu": ("step", "cpu_s"), "infer": ("infer", "median_s")}


def time_ratio(r: dict, ref: dict, key: str) -> float:
    """r's time over ref's: the median of in-round ratios when both were alternated in one process
    (`rounds`), else the ratio of their medians."""
    if key in r.get("rounds", {}) and key in ref.get("rounds", {}):
        return statistics.median(a / b for a, b in zip(r["rounds"][key], ref["rounds"][key]))
    name, field = MEDIANS[key]
    return r[name][field] / ref[name][field]


def add_ratios(results: list[dict], matrix_flops: float | None = None) -> None:
    """Each result's figures as ratios to full fine-tuning of its backbone and its step to LoRA's,
    measured in the same run; its MFU against `matrix_flops` (FLOP/s)."""
    for r in results:
        if "error" in r:
            continue
        if matrix_flops and r.get("flops"):
            r["mfu"] = r["flops"] / r["step"]["median_s"] / matrix_flops
        lora = reference(results, r["case"]["backbone"], "lora")
        if lora is not None:
            r["vs_lora"] = {"step": time_ratio(r, lora, "step"), "step_cpu": time_ratio(r, lora, "step_cpu")}
        full = reference(results, r["case"]["backbone"])
        if full is None:
            continue
        r["vs_full"] = {"trainable": r["trainable"] / full["trainable"],
                        "step": time_ratio(r, full, "step"), "infer": time_ratio(r, full, "infer"),
                        "adapter": r["adapter_bytes"] / full["adapter_bytes"]}
        if r["peak_mb"] is not None and full["peak_mb"] is not None:
            r["vs_full"].update(peak=r["peak_mb"] / full["peak_mb"], train_increment=increment(r) / increment(full))


def increment(r: dict) -> float:
    """What training adds to the built model: peak memory minus memory after building it."""
    return r["peak_mb"] - r["built_mb"]


def comparisons(results: list[dict]) -> dict:
    """Our VideoMAE methods against transformers + peft's equivalents (step times paired in the peft
    worker, memory from each one's own process), and merged LoRA against the plain backbone."""
    out: dict = {"vs_transformers_peft": [], "merged_lora": []}
    ok = [r for r in results if "error" not in r]
    for ours in (r for r in ok if r["case"]["impl"] == "vidpeft"):
        name, method = ours["case"]["backbone"], ours["case"]["method"]
        theirs = next((r for r in ok if r["case"]["impl"] == HF_PEFT and r["case"]["backbone"] == name
                       and r["case"]["method"] == method), None)
        if theirs is not None:
            paired = theirs["paired"]
            memory = ours["peak_mb"] is not None and theirs["peak_mb"] is not None
            out["vs_transformers_peft"].append({
                "backbone": name, "method": method, "step": paired["step"], "step_cpu": paired["step_cpu"],
                "rounds": paired["rounds"], "peak": ours["peak_mb"] / theirs["peak_mb"] if memory else None,
                "train_increment": increment(ours) / increment(theirs) if memory else None,
                "saved": ours["saved_mb"] / theirs["saved_mb"]})
        if "merge" in ours:
            merge = ours["merge"]
            out["merged_lora"].append({"backbone": name, **merge, "ratio": merge["merged_s"] / merge["plain_s"]})
    return out


def label(r: dict) -> str:
    return r["case"]["method"] + (f" ({HF_PEFT})" if r["case"]["impl"] == HF_PEFT else "")


def markdown(run: dict) -> str:
    """The tables printed on stdout (and shown in the README)."""
    results, comp = run["results"], run["comparisons"]
    lines = [
        f"`{run['command']}`",
        "",
        "input " + "; ".join(f"{b} {shape}" for b, shape in run["input"].items()) + f", {run['device']}, {run['threads']} threads, torch {run['torch']}, "
        f"load average {run['load_before'][0]:.2f} before / {run['load_after'][0]:.2f} after "
        f"({run['cpus']} CPUs); {run.get('amp') or 'fp32'}; times are medians of {run['repeats']} after {1 + run['warmup'] + bool(run.get('one_process'))} warm-up; "
        f"peak = {run['memory']}; ×full, ×LoRA = ratio to full fine-tuning, to LoRA in this run"
        + ("; every case in one process, alternated rounds, median of in-round ratios" if run.get("one_process") else "")
        + (f"; MFU = counted FLOPs of a step / step time / {run['matrix_flops'] / 1e12:.2f} TFLOP/s "
           f"({run['matrix_dtype']} matrix product measured here, the better of before and after the run)" if run.get("matrix_flops") else ""),
        "",
        *markdown_table(["backbone", "method", "trainable", "adapter", "built MB", "peak MB", "training adds MB",
                         "saved act. MB", "step s", "infer s", "peak ×full", "step ×full", "infer ×full",
                         "step ×LoRA", "MFU"],
                        [], "ll" + "r" * 13),
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['case']['backbone']} | {label(r)} | failed: {r['error']} |")
            continue
        v = r.get("vs_full", {})
        ratio = (lambda k: f"{v[k]:.2f}" if k in v else "–")
        memory = (lambda mb: "–" if mb is None else f"{mb:.0f}")
        lora = f"{r['vs_lora']['step']:.2f}" if "vs_lora" in r else "–"
        mfu = f"{r['mfu']:.1%}" if "mfu" in r else "–"
        lines.append(
            f"| {r['case']['backbone']} | {label(r)} | {r['trainable']:,} | {human_bytes(r['adapter_bytes'])} "
            f"| {memory(r['built_mb'])} | {memory(r['peak_mb'])} "
            f"| {memory(None if r['peak_mb'] is None else increment(r))} | {r['saved_mb']:.1f} "
            f"| {r['step']['median_s']:.3f} | {r['infer']['median_s']:.3f} "
            f"| {ratio('peak')} | {ratio('step')} | {ratio('infer')} | {lora} | {mfu} |")
    for backbone in dict.fromkeys(r["case"]["backbone"] for r in results):
        versus = [r for r in results if "vs_lora" in r and r["case"]["backbone"] == backbone
                  and r["case"]["impl"] == "vidpeft" and r["case"]["method"] != "lora"]
        if versus:
            lines += ["", f"{backbone}: X step / LoRA step: "
                          + ", ".join(f"{r['case']['method']} {r['vs_lora']['step']:.2f}× "
                                      f"(CPU time {r['vs_lora']['step_cpu']:.2f}×)" for r in versus)]
    for c in comp["vs_transformers_peft"]:
        lines += ["", f"{c['backbone']} + {c['method']}, vidpeft / transformers+peft: step time {c['step']:.2f}× "
                      f"(CPU time {c['step_cpu']:.2f}×; both in one process, median of {c['rounds']} "
                      f"alternated rounds' ratios), "
                      + (f"peak memory {c['peak']:.2f}× (training adds {c['train_increment']:.2f}×), "
                         if c["peak"] is not None else "")
                      + f"saved activations {c['saved']:.2f}×"]
    for m in comp["merged_lora"]:
        lines += ["", f"{m['backbone']} merged LoRA inference {m['merged_s']:.3f} s vs plain backbone "
                      f"{m['plain_s']:.3f} s: {m['ratio']:.2f}× (max |logit change| from merging "
                      f"{m['max_abs_diff']:.1e})"]
    return "\n".join(lines)


def human_bytes(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= 100 * 1024 else f"{n / 1024:.0f} KB"


def plot(run: dict, path: Path) -> None:
    """Peak memory and step time of every method relative to full fine-tuning, a panel per backbone."""
    plt = pyplot()
    backbones = list(dict.fromkeys(r["case"]["backbone"] for r in run["results"]))
    fig, axes = plt.subplots(1, len(backbones), figsize=(6.5 * len(backbones), 4.2), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        rows = [r for r in run["results"] if r["case"]["backbone"] == backbone and "vs_full" in r]
        xs = range(len(rows))
        top = 1.0
        for offset, key, name, color in ((-0.2, "peak", "peak memory", "#4c72b0"),
                                         (0.2, "step", "training step time", "#dd8452")):
            values = [r["vs_full"].get(key, 0.0) for r in rows]  # 0: not measured (one CPU process)
            bars = ax.bar([x + offset for x in xs], values, 0.4, label=name, color=color)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
            top = max([top, *values])
        ax.set_ylim(0, top * 1.3)  # room for the legend above the bars
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(list(xs), [label(r).replace(" (", "\n(") for r in rows], fontsize=8, rotation=30, ha="right")
        ax.set_ylabel("relative to full fine-tuning")
        ax.set_title(f"{backbone}, {run['input'][backbone]}", fontsize=10)
        ax.legend(fontsize=8, loc="upper right", ncol=2)
    fig.suptitle(f"vidpeft-bench ({run['device']}, load average {run['load_before'][0]:.1f})", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
