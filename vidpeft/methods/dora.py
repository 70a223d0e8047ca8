"""DoRA, weight-decomposed low-rank adaptation (Liu et al. 2024), computed as peft's DoRA is.

Each adapted output row i of a frozen Linear (weight W, bias b) becomes
    W'_i = m_i · (W + s·B·A)_i / ‖(W + s·B·A)_i‖,   s = alpha / rank,
with B zero-initialised, the magnitude m initialised to the row norms of W + s·B·A (so the network
is unchanged at step 0) and the norm detached from the graph (the paper's section 4.3, peft's
`DoraLinearLayer`). With f = m / ‖W + s·B·A‖ the forward is peft's:
    y = f ⊙ (W·x + s·B·A·x) + b                                  (no dropout, or evaluation)
    y = W·x + b + (f − 1) ⊙ W·x' + f ⊙ s·B·A·x',  x' = dropout(x)  (training with dropout)
Targets as LoRA's: row slices q, k, v of the fused qkv (rows are independent, so a slice gets the
same norms and factors as peft's separate query / key / value Linear), plus `proj` (attn.proj) and
`mlp` (mlp.fc1 and mlp.fc2).
The magnitude follows the backbone's weights: loading a checkpoint that sets a wrapped weight but
not its magnitude (load_pretrained) re-initialises the magnitude to the new row norms, as peft
initialises it on the pretrained weights. `merge()` folds W <- f ⊙ (W + s·B·A) (LoRA's merge, plus
the factor, kept to `unmerge()`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import MethodConfig, Wrapper, blocks, for_each, register_method

QKV_SLICES = {"q": 0, "k": 1, "v": 2}
TARGETS = (*QKV_SLICES, "proj", "mlp")


@dataclass
class DoRAConfig(MethodConfig):
    rank: int = field(default=16, metadata={"help": "LoRA / DoRA rank r"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA / DoRA alpha; the update is scaled by alpha / rank"})
    targets: tuple[str, ...] = field(default=("q", "v"), metadata={
        "help": "LoRA / DoRA: the parts adapted: q, k, v (slices of qkv); DoRA also proj (attn.proj), mlp (fc1, fc2)"})
    dropout: float = field(default=0.0, metadata={"help": "LoRA / DoRA: dropout on the update's input"})

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(f"DoRA targets must be distinct names among {', '.join(TARGETS)}; got {self.targets}")
        if self.rank < 1:
            raise ValueError(f"DoRA rank must be >= 1, got {self.rank}")


class DoRALinear(Wrapper):
    """DoRA on the output rows `slices` [(start, stop), ...] of a Linear: one rank-r pair (A, B) and
    one magnitude per slice, stacked as LoRA stacks them (lora_A (n·r, in), lora_B (rows, r))."""

    def __init__(self, linear: nn.Linear, slices: list[tuple[int, int]], cfg: DoRAConfig) -> None:
        super().__init__(linear)
        self.slices = sorted(slices)
        self.rank = cfg.rank
        self.scale = cfg.alpha / cfg.rank
        rows = sum(stop - start for start, stop in self.slices)
        self.lora_A = nn.Parameter(torch.empty(len(self.slices) * cfg.rank, linear.in_features))
        self.lora_B = nn.Parameter(torch.zeros(rows, cfg.rank))
        for a in self.lora_A.split(cfg.rank):
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.magnitude = nn.Parameter(self.weight_norm(linear.weight))
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.merged = False  # the update is folded into base_layer.weight
        self.merged_factor: torch.Tensor | None = None  # f at merge time, to unmerge exactly
        self.register_load_state_dict_pre_hook(DoRALinear._magnitude_of_loaded_weight)

    def pairs(self):
        """(start, stop, A, B) of each adapted slice."""
        bs = self.lora_B.split([stop - start for start, stop in self.slices])
        return [(start, stop, a, b) for (start, stop), a, b in zip(self.slices, self.lora_A.split(self.rank), bs)]

    def delta(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.scale * b @ a

    def weight_norm(self, weight: torch.Tensor) -> torch.Tensor:
        """Row norms of W + s·B·A over the adapted rows, detached (as peft: no gradient through them)."""
        with torch.no_grad():
            return torch.cat([torch.linalg.norm(weight[start:stop].to(a.dtype) + self.delta(a, b), dim=1)
                              for start, stop, a, b in self.pairs()])

    def factor(self) -> torch.Tensor:
        """f = m / ‖W + s·B·A‖ over every output row (1 on rows not adapted)."""
        f = self.magnitude / self.weight_norm(self.base_layer.weight)
        if self.slices == [(0, self.base_layer.out_features)]:
            return f
        parts, at, done = [], 0, 0
        for start, stop in self.slices:
            parts += [f.new_ones(start - at), f[done:done + stop - start]]
            at, done = stop, done + stop - start
        return torch.cat(parts + [f.new_ones(self.base_layer.out_features - at)])

    def expanded_B(self) -> torch.Tensor:
        """B over every output row (zero rows where not adapted), columns of each slice's A."""
        if self.slices == [(0, self.base_layer.out_features)]:
            return self.lora_B
        b = self.lora_B.new_zeros(self.base_layer.out_features, self.lora_A.shape[0])
        for i, (start, stop, _, part) in enumerate(self.pairs()):
            b[start:stop, i * self.rank:(i + 1) * self.rank] = part
        return b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer(x)
        if self.merged:
            return base
        f = self.factor().to(base.dtype)
        if self.training and not isinstance(self.dropout, nn.Identity):  # peft recomputes W·x' on the dropped input
            x = self.dropout(x)
            update = F.linear(F.linear(x, self.lora_A), self.expanded_B())
            return base + (f - 1) * F.linear(x, self.base_layer.weight) + f * self.scale * update
        update = F.linear(F.linear(x, self.lora_A), self.expanded_B())
        bias = self.base_layer.bias
        unbiased = base if bias is None else base - bias
        out = f * unbiased.add_(update, alpha=self.scale)
        return out if bias is None else out + bias

    def merge(self) -> None:
        if self.merged:
            return
        with torch.no_grad():
            weight = self.base_layer.weight
            f = self.magnitude / self.weight_norm(weight)
            done = 0
            for start, stop, a, b in self.pairs():
                part = f[done:done + stop - start, None] * (weight[start:stop] + self.delta(a, b))
                weight[start:stop] = part.to(weight.dtype)
                done += stop - start
        self.merged_factor, self.merged = f, True

    def unmerge(self) -> None:
        if not self.merged:
            return
        with torch.no_grad():
            weight, done = self.base_layer.weight, 0
            for start, stop, a, b in self.pairs():
                f = self.merged_factor[done:done + stop - start, None]
                weight[start:stop] = (weight[start:stop] / f - self.delta(a, b)).to(weight.dtype)
                done += stop - start
        self.merged_factor, self.merged = None, False

    def _magnitude_of_loaded_weight(self, state_dict: dict, prefix: str, *_) -> None:
        """A checkpoint that sets the wrapped weight but not the magnitude (a backbone checkpoint):
        the magnitude starts again from the loaded weight's row norms, so step 0 is that backbone."""
        weight = state_dict.get(f"{prefix}base_layer.weight")
        if weight is not None and f"{prefix}magnitude" not in state_dict and not self.merged:
            state_dict[f"{prefix}magnitude"] = self.weight_norm(weight.to(self.lora_A.device))


def linear_of(block: nn.Module, path: str) -> nn.Linear:
    module = block
    for part in path.split("."):
        module = getattr(module, part, None)
    if not isinstance(module, nn.Linear):
        raise ValueError(f"DoRA target {path} needs an nn.Linear at block.{path}; {type(block).__name__} has "
                         f"{type(module).__name__}")
    return module


@register_method("dora", DoRAConfig, "weight-decomposed LoRA (magnitude x direction) on q and v, mergeable")
def attach(model: nn.Module, cfg: DoRAConfig) -> None:
    for block in list(blocks(model)):
        qkv = linear_of(block, "attn.qkv")
        width = qkv.out_features // 3
        slots = [QKV_SLICES[t] for t in cfg.targets if t in QKV_SLICES]
        if slots:
            block.attn.qkv = DoRALinear(qkv, [(s * width, (s + 1) * width) for s in slots], cfg)
        paths = (["attn.proj"] if "proj" in cfg.targets else []) + (["mlp.fc1", "mlp.fc2"] if "mlp" in cfg.targets else [])
        for path in paths:
            linear = linear_of(block, path)
            owner, name = path.rsplit(".", 1)
            setattr(block.get_submodule(owner), name, DoRALinear(linear, [(0, linear.out_features)], cfg))


def merge(model: nn.Module) -> nn.Module:
    """Fold every DoRA update into its weight: W <- m / ‖W + s·B·A‖ · (W + s·B·A), row by row."""
    return for_each(model, DoRALinear, "merge")


def unmerge(model: nn.Module) -> nn.Module:
    """Undo `merge` with the factors it used, so training can go on."""
    return for_each(model, DoRALinear, "unmerge")
