"""Reopen a finished training run for testing or prediction."""
from __future__ import annotations

from pathlib import Path

from ..data import DataConfig
from ..errors import MissingFile
from ..model import adapter_dir, compile_model, load_adapter
from .config import read_yaml


def checkpoint_dir(work_dir: Path) -> Path:
    found = adapter_dir(work_dir)
    if found is not None:
        return found
    raise MissingFile(f"{work_dir}: no best/adapter.json; is this a finished vidpeft-train work dir?")


def run_dir(work_dir: Path) -> Path:
    """The work dir itself, or the run holding it when given its best/."""
    for candidate in (work_dir, work_dir.parent):
        if (candidate / "config.yaml").is_file() and (candidate == work_dir or adapter_dir(work_dir)):
            return candidate
    if not work_dir.is_dir():
        raise MissingFile(f"{work_dir}: no such work dir; pass the --work-dir of a vidpeft-train run")
    raise MissingFile(f"{work_dir}: not a vidpeft-train work dir (no config.yaml); pass the --work-dir "
                      "of a vidpeft-train run or its best/")


def load_run(work_dir: str | Path, pretrained: str | None = None, data_overrides: dict | None = None,
             compile: bool = False):
    """(model in eval mode, resolved config, DataConfig) of the run in `work_dir`; `compile`:
    torch.compile the model (with the run's train.compile_backend, inductor by default)."""
    work_dir = Path(work_dir)
    cfg = read_yaml(run_dir(work_dir) / "config.yaml")
    for key, value in (data_overrides or {}).items():
        if value is not None:
            section, name = key.split(".")
            cfg.setdefault(section, {})[name] = value
    model = load_adapter(checkpoint_dir(work_dir), pretrained=pretrained).eval()
    if compile:
        compile_model(model, str((cfg.get("train") or {}).get("compile_backend") or "inductor"))
    return model, cfg, DataConfig.from_recipe(cfg)
