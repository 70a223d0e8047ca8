"""The resolved config of a run: a recipe (vidpeft.data.load_recipe) plus command-line overrides."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import MissingFile, UnknownOption, UserError
from ..fileio import write_atomic


def resolve(recipe: dict, overrides: dict[str, Any], sets: list[str]) -> dict:
    """The recipe, then flag overrides (dotted keys; None = not given), then `--set a.b=value`."""
    cfg = dict(recipe)
    for dotted, value in overrides.items():
        if value is not None:
            set_dotted(cfg, dotted, value)
    for item in sets:
        if "=" not in item:
            raise UserError(f"--set {item!r}: write it as section.key=value, e.g. train.lr=0.01")
        dotted, text = item.split("=", 1)
        set_dotted(cfg, dotted.strip(), yaml.safe_load(text))
    return cfg


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def write_yaml(path: Path, cfg: dict) -> None:
    write_atomic(path, yaml.safe_dump(cfg, sort_keys=False))


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise MissingFile(f"{path}: missing; is this a vidpeft-train work dir?")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _help(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class TrainConfig:
    """The `train:` section of a recipe. Unknown keys are an error; the defaults are defined here only."""

    epochs: int = _help(90, "number of epochs")
    batch_size: int = _help(64, "clips per process and optimiser micro-step")
    total_batch_size: int | None = _help(None, "effective batch (world size x batch x accumulation): sets "
                                         "the accumulation steps, so a recipe's batch holds on fewer GPUs")
    accumulation: int = _help(1, "gradient accumulation steps")
    lr: float | None = _help(None, "learning rate (default: base_lr x effective batch / 256)")
    base_lr: float = _help(0.1, "learning rate per 256 clips of effective batch")
    warmup_epochs: float = _help(0.0, "linear warm-up epochs, then cosine")
    min_lr_ratio: float = _help(0.0, "final lr of the cosine as a fraction of lr")
    optimizer: str = _help("sgd", "sgd or adamw")
    momentum: float | None = _help(0.9, "SGD momentum")
    betas: tuple[float, float] = _help((0.9, 0.999), "AdamW betas")
    weight_decay: float = _help(0.0, "weight decay (none on biases, norms and bias tables)")
    layer_decay: float | None = _help(None, "layer-wise lr decay (VideoMAE recipe), none if null")
    clip_grad: float | None = _help(None, "clip the gradient norm to this value")
    label_smoothing: float = _help(0.0, "label smoothing")
    mixup: float = _help(0.0, "mixup alpha (0 = off)")
    cutmix: float = _help(0.0, "cutmix alpha (0 = off)")
    mixup_prob: float = _help(1.0, "probability that a batch is mixed (timm's mixup_prob)")
    mixup_switch_prob: float = _help(0.5, "probability of cutmix instead of mixup when both are on")
    drop_path: float = _help(0.0, "stochastic depth rate of the backbone")
    amp: str | bool | None = _help(True, "bf16, fp16, true (fp16 on GPU; bf16 on a CPU with native bf16, else fp32) or none")
    eval_every: int = _help(1, "validate every N epochs, keeping the best; 0 = test the last epoch")
    val_clips: int = _help(1, "temporal clips per validation video")
    val_crops: int = _help(1, "spatial crops per validation clip")
    val_temporal: str = _help("centred", "placement of the validation clips: videomae, mmaction or centred")
    seed: int = _help(0, "random seed: initialisation, sampling, augmentation, dropout")
    grad_checkpointing: bool = _help(False, "recompute block activations in backward")
    strict: bool = _help(False, "stop at the first unreadable training video")
    compile: bool = _help(False, "torch.compile the model (--compile)")
    compile_backend: str = _help("inductor", "torch.compile backend, e.g. inductor or aot_eager")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and f.type in _CASTS:
                try:
                    object.__setattr__(self, f.name, _CASTS[f.type](value))
                except (TypeError, ValueError):
                    raise UserError(f"train.{f.name}: {value!r} is not a valid value ({f.metadata['help']})") from None
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        checks = [
            (self.epochs >= 1 and self.batch_size >= 1 and self.accumulation >= 1,
             "train.epochs, train.batch_size and train.accumulation must be at least 1"),
            (self.optimizer.lower() in ("sgd", "adamw"), f"train.optimizer: {self.optimizer!r}; use sgd or adamw"),
            (self.total_batch_size is None or self.total_batch_size >= 1, "train.total_batch_size must be at least 1"),
            (self.eval_every >= 0 and self.warmup_epochs >= 0, "train.eval_every and warmup_epochs must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any]) -> "TrainConfig":
        options = dict(recipe.get("train") or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UnknownOption(f"unknown key(s) {', '.join(unknown)} in the train: section (e.g. --set "
                                f"train.{unknown[0]}=...); known: {', '.join(known)}")
        return cls(**options)

    def resolve_accumulation(self, world_size: int) -> int:
        """Accumulation steps: from total_batch_size when given (it must divide evenly)."""
        if self.total_batch_size is None:
            return self.accumulation
        per_step = world_size * self.batch_size
        if self.total_batch_size % per_step:
            raise UserError(f"--total-batch-size {self.total_batch_size} is not a multiple of world size "
                            f"{world_size} x --batch-size {self.batch_size} = {per_step}")
        return self.total_batch_size // per_step


_CASTS = {"int": int, "float": float, "int | None": int, "float | None": float}
