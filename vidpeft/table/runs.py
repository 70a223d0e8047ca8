"""Finished vidpeft-train runs, read from their eval.json, config.yaml and best/adapter.json."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

SWEEP_STATUS = "sweep.json"
# config.yaml keys in which runs averaged in one cell may differ: the seed, and what does not change what
# a run learns or where it was written (decoders give the same frames; results are worker-count independent)
POOLED_KEYS = {"train.seed", "work_dir", "resume", "overwrite", "tensorboard", "data.num_workers", "data.decoder",
               "train.compile", "train.compile_backend", "resolved.world_size", "resolved.num_workers"}


@dataclass(frozen=True)
class Run:
    path: Path
    backbone: str
    method: str
    variant: str            # the options that differ from the method's defaults on this backbone ("" if none)
    trainable: int          # excluding the head, as the benchmark counts
    dataset: str            # the data root's folder name (what the user called it)
    data_key: str           # data root + test list: runs on the same videos
    recipe_dataset: str | None  # ssv2 / k400 / hmdb51 as vidpeft-prep wrote it (for published rows)
    seed: int
    top1: float
    top5: float
    setting: tuple[tuple[str, str], ...]  # what must match before runs are averaged (views, clip, selection)
    config: tuple[tuple[str, str], ...] = ()  # the resolved config.yaml, flattened, without POOLED_KEYS


def find_run_dirs(paths: list[str]) -> tuple[list[Path], list[dict]]:
    """Run dirs (holding eval.json and config.yaml) in or under `paths`, and the cells that sweeps under
    them recorded as not finished (failed, refused, interrupted, pending)."""
    runs: dict[Path, None] = {}
    unfinished: list[dict] = []
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such directory; pass vidpeft-train work dirs or sweep roots")
        found = [p.parent for p in sorted(path.rglob("eval.json")) if (p.parent / "config.yaml").is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: no finished run here (a run dir holds eval.json and config.yaml)")
        runs.update((p.resolve(), None) for p in found)
        for status in sorted(path.rglob(SWEEP_STATUS)):
            unfinished += [c for c in json.loads(status.read_text(encoding="utf-8")).get("cells", [])
                           if c.get("status") not in ("done", "finished-already")]
    return list(runs), unfinished


def read_run(path: Path) -> Run:
    from ..model import build_model, count_parameters, read_spec

    result = json.loads((path / "eval.json").read_text(encoding="utf-8"))
    cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    spec = read_spec(path / "best")
    counted = _meta_model(build_model, spec.backbone, spec.method, spec.num_classes, spec.options)
    defaults = _meta_model(build_model, spec.backbone, spec.method, 2, {}).vidpeft_spec.options
    variant = ", ".join(f"{k}={_text(v)}" for k, v in spec.options.items() if defaults.get(k) != v)
    data_root = Path(cfg["data_root"])
    lists = cfg.get("lists") or {}
    return Run(path, spec.backbone, spec.method, variant, count_parameters(counted)["trainable"],
               data_root.name, f"{data_root}:{lists.get('test', 'test.csv')}", cfg.get("dataset"),
               int((cfg.get("train") or {}).get("seed", 0)), float(result["top1"]), float(result["top5"]),
               _setting(result, cfg, data_root, lists), tuple(sorted(flat_config(cfg).items())))


def flat_config(cfg: dict, prefix: str = "") -> dict[str, str]:
    """config.yaml as `section.key -> value text`, without the keys runs of one cell may differ in."""
    flat = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, name + "."))
        elif name not in POOLED_KEYS:
            flat[name] = _text(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def read_runs(paths: list[Path]) -> list[Run]:
    """Every readable run; one that cannot be read is reported on stderr and left out."""
    runs = []
    for path in paths:
        try:
            runs.append(read_run(path))
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            print(f"warning: {path}: left out of the table: {error}", file=sys.stderr)
    return runs


def _meta_model(build_model, backbone: str, method: str, num_classes: int, options: dict):
    import torch

    with torch.device("meta"):  # parameter shapes without weights or memory
        return build_model(backbone, method, num_classes, **options)


def _text(value) -> str:
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _setting(result: dict, cfg: dict, data_root: Path, lists: dict) -> tuple[tuple[str, str], ...]:
    views = dict(result["views"])
    sampling = f"stride {views.pop('stride')}" if "stride" in views else f"{views.pop('segments', '?')} segments"
    size = (cfg.get("data") or {}).get("input_size")
    clip = f"{views.pop('frames')} frames, {sampling}" + (f", {size} px" if size else "")
    tested = f"{views.pop('clips')} clips x {views.pop('crops')} crops"
    tested += "".join(f", {k} {v}" for k, v in sorted(views.items()))  # any other view setting, e.g. temporal
    return (("clip", clip), ("views", tested), ("selection", _selection(result, data_root, lists)))


def _selection(result: dict, data_root: Path, lists: dict) -> str:
    """How the tested checkpoint was chosen, saying so when it was chosen on the test videos."""
    if result.get("model_selection", "").startswith("last epoch"):
        return "last epoch"
    if result.get("selected_on_test"):
        return "best epoch on the test videos"
    val, test = (data_root / lists.get(k, f"{k}.csv") for k in ("val", "test"))
    try:
        same = sorted(val.read_text(encoding="utf-8").split()) == sorted(test.read_text(encoding="utf-8").split())
    except OSError:
        same = False
    return "best epoch on the test videos" if same else "best val epoch"
