"""The table as Markdown (stdout), table.csv, table.json and table.png."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..fileio import write_atomic
from ..report import markdown_table, pyplot, save_png
from .build import Score, Table

MARKERS = "os^vD<>pPX*h"


def _mean_std(mean: float, std: float | None, seeds: list[int]) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f} (seeds {', '.join(map(str, seeds))})"


def _varying(table: Table) -> list[str]:
    common = table.common_setting
    return [k for k, _ in (table.rows[0].setting if table.rows else ()) if k not in common]


def markdown(table: Table, unfinished: list[dict] = ()) -> str:
    varying = _varying(table)
    referenced = [d for d in table.datasets if any(r.scores.get(d) and r.scores[d].reference for r in table.rows)]
    header = ["backbone", "method", "trainable", *varying]
    for d in table.datasets:
        header += [f"{d} top-1", f"{d} top-5", f"{d} PPT"]
        if d in referenced:
            header += [f"{d} {table.reference['name']} top-1", f"{d} Δ top-1"]
    rows = []
    for row in table.rows:
        cells = [row.backbone, row.label, f"{row.trainable:,}", *(dict(row.setting)[k] for k in varying)]
        for d in table.datasets:
            s = row.scores.get(d)
            cells += ([_mean_std(s.top1_mean, s.top1_std, s.seeds), _mean_std(s.top5_mean, s.top5_std, s.seeds),
                       f"{s.ppt:.2f}"] if s else ["–"] * 3)
            if d in referenced:
                ref = s.reference if s else None
                cells += [f"{ref['top1']:.2f}", f"{s.top1_mean - ref['top1']:+.2f}"] if ref else ["–", "–"]
        rows.append(cells)
    seeds = sorted({len(s.top1) for r in table.rows for s in r.scores.values()})
    lines = ["all rows: " + "; ".join(f"{k}: {v}" for k, v in table.common_setting.items() if v)
             + "; top-1/top-5 in %, mean ± sample std over the seeds in brackets where a row has several; "
             "trainable parameters exclude the head; PPT = top-1 × exp(−log10(P / 10^7 + 1))", "",
             *markdown_table(header, rows, "ll" + "r" * (len(header) - 2))]
    if seeds and seeds[-1] == 1:
        lines[0] += "; one run per row"
    if varying:
        lines += ["", f"rows differ in {', '.join(varying)}: runs are averaged only within a row"]
    if table.reference:
        lines += ["", *reference_lines(table)]
    lines += [""] if unfinished else []
    for cell in unfinished:
        lines.append(f"not in the table: {cell['name']}: {cell.get('status')}"
                     + (f" ({cell['reason']})" if cell.get("reason") else ""))
    return "\n".join(lines)


def reference_lines(table: Table) -> list[str]:
    ref = table.reference
    lines = [f"{ref['name']} published rows ({ref['source']}; {ref['setting']['frames']} frames, "
             f"{ref['setting']['clips']} clips x {ref['setting']['crops']} crops; {ref['setting']['note']}). "
             f"{ref['ppt']}."]
    if not table.unmatched_reference:
        return lines
    names = list(ref["datasets"].values())
    header = ["backbone", "method", "trainable", *(f"{n} {k}" for n in names for k in ("top-1", "PPT"))]
    rows = [[f"{p['model']} ({p['backbone']})", p["method"], f"{p['params_m']:.2f}M" if p["params_m"] else "0",
             *(v for d in ref["datasets"] for v in (f"{p[d]['top1']:.2f}",
                                                     "–" if p[d]["ppt"] is None else f"{p[d]['ppt']:.2f}"))]
            for p in table.unmatched_reference]
    return lines + ["", *markdown_table(header, rows, "lll" + "r" * (len(header) - 3))]


def records(table: Table) -> list[dict]:
    """One record per row and dataset (the CSV lines and the JSON rows)."""
    out = []
    for row in table.rows:
        for dataset, s in row.scores.items():
            ref = s.reference or {}
            out.append({"backbone": row.backbone, "method": row.method, "options": row.variant,
                        "trainable": row.trainable, **dict(row.setting), "dataset": dataset,
                        "recipe_dataset": table.recipe_datasets.get(dataset), "runs": len(s.top1),
                        "seeds": s.seeds, "top1_mean": s.top1_mean, "top1_std": s.top1_std,
                        "top5_mean": s.top5_mean, "top5_std": s.top5_std, "ppt": s.ppt,
                        "reference_top1": ref.get("top1"), "reference_ppt": ref.get("ppt"),
                        "delta_top1": s.top1_mean - ref["top1"] if ref else None, "run_dirs": s.runs})
    return out


def write_csv(table: Table, path: Path) -> None:
    rows = records(table)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: " ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                             for k, v in r.items()})
    write_atomic(path, buffer.getvalue())


def write_json(table: Table, path: Path, unfinished: list[dict] = ()) -> None:
    data = {"rows": records(table), "common_setting": table.common_setting, "not_in_table": list(unfinished),
            "reference": {k: v for k, v in (table.reference or {}).items() if k != "rows"} or None,
            "reference_unmatched": table.unmatched_reference}
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats with fewer (or as many) parameters and a higher top-1."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot(table: Table, path: Path) -> None:
    """Top-1 against trainable parameters (log axis; methods that train nothing sit at a tick marked 0, a
    decade left of the others), one panel per dataset, one marker per method, a colour per backbone, the
    Pareto front dashed; published rows of the reference hollow."""
    plt = pyplot()
    methods = list(dict.fromkeys(r.label for r in table.rows))
    backbones = list(dict.fromkeys(r.backbone for r in table.rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    positive = [r.trainable for r in table.rows if r.trainable > 0]
    zero = 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0
    fig, axes = plt.subplots(1, len(table.datasets), figsize=(6.4 * len(table.datasets), 4.8), squeeze=False)
    for ax, dataset in zip(axes[0], table.datasets):
        points = []
        for row in (r for r in table.rows if dataset in r.scores):
            s: Score = row.scores[dataset]
            x = row.trainable or zero
            marker = MARKERS[methods.index(row.label) % len(MARKERS)]
            colour = colours[backbones.index(row.backbone) % len(colours)]
            ax.errorbar(x, s.top1_mean, yerr=s.top1_std or 0, fmt=marker, color=colour, ms=7, capsize=3)
            points.append((x, s.top1_mean))
            if s.reference:
                ax.plot(x, s.reference["top1"], marker, mfc="none", color=colour, ms=9)
        ax.set_xscale("log")
        ax.margins(x=0.08, y=0.1)
        front = pareto(points)
        right = ax.get_xlim()[1]
        ax.step([x for x, _ in front] + [right], [y for _, y in front] + [front[-1][1]], where="post", ls="--",
                color="grey", lw=1)
        ax.set_xlim(right=right)
        if not positive or min(r.trainable for r in table.rows) == 0:
            ax.set_xticks([t for t in ax.get_xticks() if t > zero * 5] + [zero])
            ax.set_xticklabels([f"$10^{{{round(math.log10(t))}}}$" for t in ax.get_xticks()[:-1]] + ["0"])
            ax.set_xlim(zero / 2, right)
        ax.set_xlabel("trainable parameters (head excluded)")
        ax.set_ylabel("top-1 (%)")
        ax.set_title(dataset, fontsize=10)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker=MARKERS[i % len(MARKERS)], ls="", color="black", label=m)
               for i, m in enumerate(methods)]
    handles += [plt.Line2D([], [], marker="s", ls="", color=colours[i % len(colours)], label=b)
                for i, b in enumerate(backbones)]
    handles.append(plt.Line2D([], [], ls="--", color="grey", label="Pareto front"))
    if any(s.reference for r in table.rows for s in r.scores.values()):
        handles.append(plt.Line2D([], [], marker="o", mfc="none", ls="", color="black",
                                  label=f"{table.reference['name']} (published)"))
    fig.legend(handles=handles, loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.82, 1))
    save_png(fig, path)


def write_all(table: Table, out: Path, unfinished: list[dict] = ()) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "table.csv", out / "table.json", out / "table.png"]
    write_csv(table, paths[0])
    write_json(table, paths[1], unfinished)
    plot(table, paths[2])
    return paths

