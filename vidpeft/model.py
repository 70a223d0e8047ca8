"""build_model, and adapter-only checkpoints (trainable tensors + a JSON that rebuilds the model)."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from . import hub
from .backbones import BACKBONES, backbone_info
from .backbones.checkpoints import RUN_CONFIG as ADAPTER_CONFIG
from .backbones.checkpoints import RUN_WEIGHTS as ADAPTER_WEIGHTS
from .backbones.checkpoints import LoadReport, check_shape
from .backbones.checkpoints import load_pretrained as load_checkpoint
from .backbones.checkpoints import run_dir as adapter_dir
from .errors import MissingFile, UserError
from .fileio import write_atomic
from .methods import METHODS, canonical_key



@dataclass
class ModelSpec:
    """Everything needed to rebuild a model; saved as adapter.json."""

    backbone: str
    method: str
    num_classes: int
    options: dict
    backbone_options: dict = field(default_factory=dict)
    labels: list[str] | None = None
    seed: int | None = None  # initialisation seed: rebuilds the same frozen weights without a checkpoint
    pretrained: str | None = None
    preprocess: dict = field(default_factory=dict)


def build_model(
    backbone: str,
    method: str = "full",
    num_classes: int = 400,
    *,
    backbone_options: dict | None = None,
    labels: list[str] | None = None,
    seed: int | None = None,
    **method_options,
) -> nn.Module:
    """A backbone with `method` attached: only what the method adds (plus the head) is trainable.

    With `seed`, initialisation draws from that seed (without touching the global RNG), so
    `load_adapter` can rebuild the same frozen weights when no pretrained checkpoint is used."""
    factory = BACKBONES.get(backbone)
    spec_method = METHODS.get(method)
    cfg = spec_method.config.from_options(method, method_options).for_backbone(backbone_info(backbone))
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = factory(num_classes=num_classes, **(backbone_options or {}))
        model.requires_grad_(False)
        backbone_keys = {canonical_key(k) for k in model.state_dict()}
        try:
            spec_method.attach(model, cfg)
        except ValueError as error:  # the method cannot run on this backbone (the attach contract)
            raise UserError(str(error)) from None
    # what the method added: load reports list these apart from keys a checkpoint lacks
    model.vidpeft_added = sorted(k for k in map(canonical_key, model.state_dict()) if k not in backbone_keys)
    model.head.requires_grad_(True)
    for part in getattr(model, "trained_with_head", ()):  # e.g. VideoMAE's fc_norm with train_fc_norm
        getattr(model, part).requires_grad_(True)
    model.vidpeft_spec = ModelSpec(backbone, method, num_classes, _jsonable(asdict(cfg)),
                                   dict(backbone_options or {}), labels, seed)
    return model


def _jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def refusal(backbone: str, method: str, **options) -> str | None:
    """Why `method` cannot attach to `backbone` (the one-line ValueError of its attach), or None.
    Built on the meta device: no weights, no memory. An option the method lacks still raises."""
    try:
        with torch.device("meta"):
            build_model(backbone, method, 2, **options)
    except TypeError:  # UnknownOption (an option the method does not have) is a ValueError too
        raise
    except ValueError as error:
        return str(error)
    return None


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable parameters excluding the head, the head's, and all parameters."""
    head = {id(p) for p in model.head.parameters()}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in head)
    return {
        "trainable": trainable,
        "head": sum(p.numel() for p in model.head.parameters()),
        "total": sum(p.numel() for p in model.parameters()),
    }


def trained_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Batch-norm running statistics (e.g. the head BatchNorm of linear probing): training
    changes them as it changes weights, so they are saved with the trainable tensors."""
    return {canonical_key(f"{name}.{key}" if name else key): buffer
            for name, module in model.named_modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)
            for key, buffer in module.named_buffers(recurse=False)}


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors (and trained buffers), under the names the unwrapped backbone would use."""
    state = {canonical_key(name): p.detach() for name, p in model.named_parameters() if p.requires_grad}
    return {**state, **{k: b.detach() for k, b in trained_buffers(model).items()}}


def load_adapter_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy saved trainable tensors into `model`; every trainable tensor must be present."""
    params = {**{canonical_key(name): p for name, p in model.named_parameters()}, **trained_buffers(model)}
    unexpected = sorted(set(tensors) - set(params))
    missing = sorted(k for k in adapter_state_dict(model) if k not in tensors)
    if unexpected or missing:
        raise UserError(
            f"{source}: does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "was it saved for another backbone or method?")
    for key, value in tensors.items():
        check_shape(source, key, value, params[key], "was it saved with other method options?")
    with torch.no_grad():
        for key, value in tensors.items():
            params[key].copy_(value)


def save_adapter(model: nn.Module, directory: str | os.PathLike, **spec_updates) -> Path:
    """Write DIR/adapter.safetensors (trainable tensors only) and DIR/adapter.json."""
    spec = model.vidpeft_spec
    for key, value in spec_updates.items():
        setattr(spec, key, value)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in adapter_state_dict(model).items()}
    write_atomic(directory / ADAPTER_WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    write_atomic(directory / ADAPTER_CONFIG, json.dumps(asdict(spec), indent=2))
    return directory


def read_spec(directory: str | os.PathLike) -> ModelSpec:
    path = Path(directory) / ADAPTER_CONFIG
    if not path.is_file():
        raise MissingFile(f"{path}: no adapter.json here; pass a directory written by save_adapter")
    return ModelSpec(**json.loads(path.read_text(encoding="utf-8")))


def load_pretrained(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Load backbone weights: any checkpoint format vidpeft.backbones.checkpoints recognises, a
    vidpeft work dir / its best/ from full fine-tuning (its backbone, not its head), or a hub name
    (`hf:OWNER/NAME[@REVISION]`, `timm:MODEL.TAG`: vidpeft.hub) resolved through huggingface_hub's cache."""
    report = load_checkpoint(model, hub.resolve(path))
    if hub.is_hub_name(path):
        report.path = f"{path} ({report.path})"
    return report


def load_adapter(directory: str | os.PathLike, pretrained: str | os.PathLike | None = None) -> nn.Module:
    """Rebuild the model saved by `save_adapter`, on `pretrained` (default: the one it was trained from)."""
    spec = read_spec(directory)
    model = build_model(spec.backbone, spec.method, spec.num_classes, backbone_options=spec.backbone_options,
                        labels=spec.labels, seed=spec.seed, **spec.options)
    model.vidpeft_spec = spec
    backbone_weights = pretrained if pretrained is not None else spec.pretrained
    if backbone_weights is not None:
        if not hub.is_hub_name(backbone_weights) and not Path(backbone_weights).exists():
            raise MissingFile(
                f"{backbone_weights}: the backbone this adapter was trained on is not there; "
                "pass load_adapter(..., pretrained=PATH) (or --pretrained) with the same checkpoint")
        load_pretrained(model, backbone_weights)
    if spec.pretrained is None and pretrained is not None:
        spec.pretrained = str(pretrained)
    load_adapter_weights(model, Path(directory))
    return model


def load_adapter_weights(model: nn.Module, directory: Path) -> None:
    """Copy the adapter.safetensors of `directory` into `model`."""
    load_adapter_state(model, load_file(str(directory / ADAPTER_WEIGHTS)), str(directory))


def compile_model(model: nn.Module, backend: str = "inductor") -> nn.Module:
    """torch.compile the whole model's forward, frozen parts included, in place
    (nn.Module.compile): parameter names, state_dict, adapters and checkpoints are unchanged,
    and DDP wraps it as usual. The first training step and the first evaluation pay the
    compilation (a graph each)."""
    # the backbones' functools caches (position tables, masks) are pure functions of their
    # arguments: dynamo traces through them, as intended, and need not warn that it does
    warnings.filterwarnings("ignore", message=r"Dynamo detected a call to a .?functools\.lru_cache")
    model.compile(backend=backend)
    return model
