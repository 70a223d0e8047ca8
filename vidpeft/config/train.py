"""The `train:` section of a run: optimisation, precision, validation; the defaults are defined here only."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .values import coerce_fields, option, require


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(90, "number of epochs", "--epochs")
    batch_size: int = option(64, "clips per process and optimiser micro-step", "--batch-size")
    total_batch_size: int | None = option(None, "effective batch (world size x batch x accumulation): sets the "
                                          "accumulation steps, so a recipe's batch holds on fewer GPUs",
                                          "--total-batch-size")
    accumulation: int = option(1, "gradient accumulation steps", "--accumulation")
    lr: float | None = option(None, "learning rate (default: base_lr x effective batch / 256)", "--lr")
    base_lr: float = option(0.1, "learning rate per 256 clips of effective batch")
    warmup_epochs: float = option(0.0, "linear warm-up epochs, then cosine", "--warmup-epochs")
    min_lr_ratio: float = option(0.0, "final lr of the cosine as a fraction of lr")
    optimizer: str = option("sgd", "sgd or adamw", "--optimizer")
    momentum: float | None = option(0.9, "SGD momentum")
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas")
    weight_decay: float = option(0.0, "weight decay (none on biases, norms and bias tables)", "--weight-decay")
    layer_decay: float | None = option(None, "layer-wise lr decay (VideoMAE recipe), none if null")
    clip_grad: float | None = option(None, "clip the gradient norm to this value")
    label_smoothing: float = option(0.0, "label smoothing")
    mixup: float = option(0.0, "mixup alpha (0 = off)")
    cutmix: float = option(0.0, "cutmix alpha (0 = off)")
    mixup_prob: float = option(1.0, "probability that a batch is mixed (timm's mixup_prob)")
    mixup_switch_prob: float = option(0.5, "probability of cutmix instead of mixup when both are on")
    drop_path: float = option(0.0, "stochastic depth rate of the backbone", "--drop-path")
    amp: str | bool | None = option(True, "bf16, fp16 or none (default: fp16 on GPU; bf16 on a CPU with native "
                                    "bf16, else fp32)", "--amp")
    eval_every: int = option(1, "validate every N epochs, keeping the best; 0 = no validation, test the last "
                             "epoch", "--eval-every")
    val_clips: int = option(1, "temporal clips per validation video")
    val_crops: int = option(1, "spatial crops per validation clip")
    val_temporal: str = option("centred", "placement of the validation clips: videomae, mmaction or centred")
    seed: int = option(0, "random seed: initialisation, sampling, augmentation, dropout", "--seed")
    grad_checkpointing: bool = option(False, "recompute block activations in backward", "--grad-checkpointing")
    strict: bool = option(False, "stop at the first unreadable training video", "--strict")
    compile: bool | None = option(None, "torch.compile the model (frozen parts too); default: on CUDA (the ViT-B + "
                                  "LoRA step took 0.66x eager on an H200), not on CPU (0.94x after a 90 s compile); "
                                  "the first step pays the compilation (printed)", "--compile")
    compile_backend: str = option("inductor", "torch.compile backend, e.g. inductor or aot_eager")

    def __post_init__(self) -> None:
        coerce_fields(self, "train")
        try:
            object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        except (TypeError, ValueError):
            raise UserError(f"train.betas: {self.betas!r}; give two numbers, e.g. [0.9, 0.999]") from None
        for key in ("epochs", "batch_size", "accumulation", "val_clips", "val_crops"):
            require(f"train.{key}", getattr(self, key) >= 1, f"{getattr(self, key)}; must be at least 1")
        require("train.total_batch_size", self.total_batch_size is None or self.total_batch_size >= 1,
                f"{self.total_batch_size}; must be at least 1")
        require("train.optimizer", self.optimizer.lower() in ("sgd", "adamw"), f"{self.optimizer!r}; use sgd or adamw")
        for key in ("eval_every", "warmup_epochs", "weight_decay", "drop_path", "label_smoothing"):
            require(f"train.{key}", getattr(self, key) >= 0, f"{getattr(self, key)}; must be >= 0")
        require("train.lr", self.lr is None or self.lr > 0, f"{self.lr}; must be > 0")
        require("train.amp", str(self.amp).lower() in AMP_VALUES, f"{self.amp!r}; use {', '.join(AMP_CHOICES)}")

    def resolve_accumulation(self, world_size: int) -> int:
        """Accumulation steps: from total_batch_size when given (it must divide evenly)."""
        if self.total_batch_size is None:
            return self.accumulation
        per_step = world_size * self.batch_size
        if self.total_batch_size % per_step:
            raise UserError(f"--total-batch-size {self.total_batch_size} is not a multiple of world size "
                            f"{world_size} x --batch-size {self.batch_size} = {per_step}")
        return self.total_batch_size // per_step

    def compiles(self, device_type: str) -> bool:
        """Whether the run compiles the model: as asked, else on CUDA only (where it was measured to pay)."""
        return self.compile if self.compile is not None else device_type == "cuda"

    def resolve_lr(self, effective_batch: int) -> float:
        """`lr` as given, or `base_lr` × effective batch / 256 (the linear scaling rule)."""
        return self.lr if self.lr is not None else self.base_lr * effective_batch / 256


AMP_CHOICES = ("bf16", "fp16", "none", "true")
AMP_VALUES = ("bf16", "fp16", "none", "off", "fp32", "true", "false", "auto")
