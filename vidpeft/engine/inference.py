"""Reopen a finished training run for testing or prediction."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..config.run import RunConfig
from ..errors import MissingFile
from ..model import adapter_dir, compile_model, load_adapter
from .setup import check_input_fits


def checkpoint_dir(work_dir: Path) -> Path:
    found = adapter_dir(work_dir)
    if found is not None:
        return found
    raise MissingFile(f"{work_dir}: no best/adapter.json; is this a finished vidpeft-train work dir?")


def run_folder(work_dir: Path) -> Path:
    """The work dir itself, or the run holding it when given its best/."""
    for candidate in (work_dir, work_dir.parent):
        if (candidate / "config.yaml").is_file() and (candidate == work_dir or adapter_dir(work_dir)):
            return candidate
    if not work_dir.is_dir():
        raise MissingFile(f"{work_dir}: no such work dir; pass the --work-dir of a vidpeft-train run")
    raise MissingFile(f"{work_dir}: not a vidpeft-train work dir (no config.yaml); pass the --work-dir "
                      "of a vidpeft-train run or its best/")


def load_run(work_dir: str | Path, pretrained: str | None = None, views: dict[str, Any] | None = None,
             compile: bool = False) -> tuple[nn.Module, RunConfig]:
    """(model in eval mode, the run's RunConfig with `views` — DataConfig fields from the view flags, None
    = as trained — applied and checked against the model) of the run in `work_dir`; `compile`:
    torch.compile the model (with the run's train.compile_backend)."""
    work_dir = Path(work_dir)
    cfg = RunConfig.read(run_folder(work_dir) / "config.yaml").with_views(**(views or {}))
    model = load_adapter(checkpoint_dir(work_dir), pretrained=pretrained).eval()
    check_input_fits(model, cfg.data)
    if compile:
        compile_model(model, cfg.train.compile_backend)
    return model, cfg


def model_selection(work_dir: Path) -> dict[str, Any]:
    """How the run chose the checkpoint in best/ (model_selection, selected_on_test), from its eval.json."""
    run = run_folder(work_dir)
    try:
        result = json.loads((run / "eval.json").read_text(encoding="utf-8"))
        return {"model_selection": result["model_selection"], "selected_on_test": result.get("selected_on_test")}
    except (OSError, ValueError, KeyError):
        return {"model_selection": f"unknown ({run / 'eval.json'} is missing or has no model_selection)",
                "selected_on_test": None}
