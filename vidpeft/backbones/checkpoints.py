"""load_pretrained: read a checkpoint in any common format into a vidpeft backbone.

The format is recognised from the keys (never the file name); each source format has one
filter that renames its keys to ours, owned by its family's module and registered there
(`formats.FORMATS`, in detection order). Files are read with safetensors or
torch.load(weights_only=True), so loading never executes code.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vidpeft.backbones.formats import FORMATS, Format, StateDict
from vidpeft.errors import MissingFile, UserError

HEAD_KEYS = ("head.weight", "head.bias")
# what a method wrapper calls the module it wraps (peft's name); stripped from model keys
BASE_LAYER = "base_layer"
# a vidpeft run (vidpeft-train work dir, its best/, or a save_adapter folder)
RUN_CONFIG, RUN_WEIGHTS = "adapter.json", "adapter.safetensors"


def canonical_key(key: str) -> str:
    """A parameter name as the unwrapped backbone spells it (wrappers' `.base_layer.` removed)."""
    return key.replace(f".{BASE_LAYER}.", ".")


def check_shape(source: str, key: str, value: torch.Tensor, expected: torch.Tensor, hint: str) -> None:
    if value.shape != expected.shape:
        raise UserError(f"{source}: {key} has shape {tuple(value.shape)} there but {tuple(expected.shape)} "
                         f"in the model; {hint}")


@dataclass
class LoadReport:
    path: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # a method's own tensors: no checkpoint has them
    video_only: list[str] = field(default_factory=list)  # a video model's additions to an image model

    def __str__(self) -> str:
        lines = [f"{self.path}: {self.format} checkpoint, {len(self.loaded)} tensors loaded"]
        for name in ("missing", "unexpected", "reinitialised"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"  {name} ({len(keys)}): {', '.join(keys)}")
        if self.video_only:
            lines.append(f"  not in image checkpoints, zero-initialised: {', '.join(self.video_only)}")
        if self.added:
            lines.append(f"  added by the method, initialised by it ({len(self.added)} tensors)")
        return "\n".join(lines)


# ---------------------------------------------------------------- reading

# Entries under which releases nest the weights (official: model / module; mm*: state_dict; V-JEPA 2:
# target_encoder, the EMA encoder its evaluations read, beside encoder and predictor).
NESTED = ("state_dict", "model", "module", "target_encoder", "encoder")


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Tensors of a checkpoint file or Hugging Face directory, without running any pickled code."""
    path = Path(path)
    if path.is_dir():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                return read_state_dict(path / name)
        raise MissingFile(f"{path}: directory has neither model.safetensors nor pytorch_model.bin")
    if not path.is_file():
        raise MissingFile(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix == ".npz":
        return read_npz(path)
    try:
        # official VideoMAE checkpoints carry their argparse.Namespace: plain data, safe to allow
        with torch.serialization.safe_globals([argparse.Namespace]):
            with warnings.catch_warnings():  # torch warns before refusing a TorchScript archive
                warnings.simplefilter("ignore", UserWarning)
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe is None:
            raise UserError(f"{path}: not a readable PyTorch checkpoint; check the download") from None
        raise UserError(
            f"{path}: refused to load: it holds a pickled Python object ({unsafe.group(1)}) and loading it "
            "could run code; if you trust the file, re-save only its tensors (its state_dict) with "
            "torch.save or safetensors"
        ) from None
    except Exception as err:  # noqa: BLE001 - whatever a damaged or foreign file makes torch.load raise
        if "TorchScript" in str(err):  # e.g. OpenAI CLIP's own downloads (ViT-B-16.pt)
            raise UserError(
                f"{path}: a TorchScript archive, which vidpeft does not load (it holds code); if you trust it, save "
                "its weights once: torch.save(torch.jit.load(PATH, map_location='cpu').state_dict(), 'weights.pt')"
            ) from None
        why = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({why}); check the download") from None
    while isinstance(obj, dict):
        nested = next((obj[k] for k in NESTED if isinstance(obj.get(k), dict)), None)
        if nested is None:
            break
        obj = nested
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: holds no state dict of tensors (looked under {', '.join(NESTED)})")
    return obj


def read_npz(path: Path) -> StateDict:
    """A NumPy archive (Google's JAX checkpoints) as tensors; pickled objects are refused."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: torch.from_numpy(np.array(archive[key])) for key in archive.files}
    except ValueError as err:
        raise UserError(f"{path}: not a NumPy .npz of arrays ({err}); check the download") from None
    except (OSError, EOFError) as err:
        raise UserError(f"{path}: not a readable .npz ({err}); check the download") from None


def detect_format(keys: set[str], path: str | os.PathLike) -> Format:
    for fmt in FORMATS:
        if fmt.detect(keys):
            return fmt
    sample = ", ".join(sorted(keys)[:5])
    raise UserError(
        f"{path}: unrecognised checkpoint (keys like {sample}); supported: "
        + "; ".join(f.name for f in FORMATS) + "; a vidpeft full fine-tuning run directory"
    )


def run_dir(path: Path) -> Path | None:
    """`path/best` or `path` when it holds adapter.json (a vidpeft-train work dir or a save_adapter folder)."""
    return next((d for d in (path / "best", path) if (d / RUN_CONFIG).is_file()), None)


def read_run(run: Path, path: Path) -> tuple[StateDict, Format]:
    """A vidpeft run as a checkpoint: only a full fine-tuning run holds a whole backbone."""
    from safetensors.torch import load_file

    from vidpeft.backbones import backbone_info

    spec = json.loads((run / RUN_CONFIG).read_text(encoding="utf-8"))
    if spec["method"] != "full":
        raise UserError(f"{path}: a {spec['method']} run holds only its adapter; only a full fine-tuning run "
                         "can serve as a backbone (use load_adapter to rebuild this model)")
    family = backbone_info(spec["backbone"]).family
    fmt = Format(f"vidpeft {spec['backbone']} full fine-tuning run", family, lambda keys: True, dict,
                 loads_head=False)
    return load_file(str(run / RUN_WEIGHTS)), fmt


def read_checkpoint(path: str | os.PathLike) -> tuple[StateDict, Format]:
    """The tensors of any supported source and the format they are in."""
    path = Path(path)
    run = run_dir(path) if path.is_dir() else None
    if run is not None:
        return read_run(run, path)
    sd = read_state_dict(path)
    return sd, detect_format(set(sd), path)


# ---------------------------------------------------------------- loading

def load_pretrained(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load a checkpoint of any supported format (VideoMAE, Video Swin, timm image models) into `model`.

    Works on a bare backbone or one with method wrappers (`.base_layer` is ignored in
    names). A shape mismatch is an error, except for a classification head with another
    class count (or any head of a vidpeft run, trained for its own task), which keeps its
    fresh initialisation and is listed as re-initialised."""
    sd, fmt = read_checkpoint(path)
    family = getattr(model, "family", None)
    if family is not None and family != fmt.family:
        raise UserError(f"{path}: this is a {fmt.family} checkpoint ({fmt.name} format), which cannot load "
                        f"into a {family} model; pass a {family} checkpoint")
    source = fmt.convert(sd)
    if fmt.by_model:
        try:
            source = model.adapt_checkpoint(source)
        except ValueError as err:
            raise UserError(f"{path}: {err}") from None
    own = model.state_dict()
    by_canonical = {canonical_key(key): key for key in own}
    report = LoadReport(str(path), fmt.name)
    to_load = {}
    for key, value in source.items():
        target = by_canonical.get(key)
        if target is None:
            report.unexpected.append(key)
        elif key in HEAD_KEYS and (not fmt.loads_head or value.shape != own[target].shape):
            report.reinitialised.append(key)
        else:
            check_shape(str(path), key, value, own[target], f"is this the right model size ({fmt.name})?")
            to_load[target] = value
            report.loaded.append(key)
    if report.reinitialised:
        reset_head(model)
    model.load_state_dict(to_load, strict=False)
    taken = set(report.loaded) | set(report.reinitialised)
    report.added = list(getattr(model, "vidpeft_added", []))
    if fmt.by_model:
        report.video_only = [k for k in getattr(model, "video_only_keys", ()) if k in by_canonical]
    skip = set(report.added) | set(report.video_only)
    report.missing = [k for k in by_canonical if k not in taken and k not in skip]
    for keys in (report.loaded, report.missing, report.unexpected, report.reinitialised):
        keys.sort()
    return report


def reset_head(model: nn.Module) -> None:
    """Fresh initialisation of the head in place (keeps any wrapper and its requires_grad), as the
    model initialises it (its recipe's std and scale) when it can say."""
    if hasattr(model, "init_head"):
        model.init_head()
        return
    linear = getattr(model.head, BASE_LAYER, model.head)
    nn.init.trunc_normal_(linear.weight, std=0.02)
    nn.init.zeros_(linear.bias)
