"""What a method is: a dataclass config plus `attach(model, cfg)`, registered by name.

A method never edits a backbone file. It finds the named parts every block exposes
(`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp`, `attn.kv_prefix`) and wraps or replaces
them. Everything it adds is trainable; everything else was frozen by `build_model`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable, Iterator

import torch
from torch import nn

from ..backbones.checkpoints import canonical_key  # noqa: F401  (the wrapper-name rule, re-exported)
from ..errors import UnknownOption, UserError
from ..registry import Registry

if TYPE_CHECKING:
    from ..backbones import BackboneInfo


@dataclass
class MethodConfig:
    """Options of a method: dataclass fields with `metadata={"help": ...}` (the CLIs' flags and
    help come from them). A field declared `X | None = None` means "the backbone's default",
    filled by `for_backbone` from `BackboneInfo.method_defaults[field name]`."""

    def for_backbone(self, info: "BackboneInfo") -> "MethodConfig":
        for f in fields(self):
            if getattr(self, f.name) is None and f.name in info.method_defaults:
                setattr(self, f.name, info.method_defaults[f.name])
        return self

    @classmethod
    def from_options(cls, method: str, options: dict) -> "MethodConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise UnknownOption(f"method {method!r} has no option {', '.join(unknown)} (options: {allowed})")
        try:
            return cls(**options)
        except ValueError as error:  # a method's own check of its option values
            raise UserError(f"method {method!r}: {error}") from None


@dataclass(frozen=True)
class Method:
    name: str
    config: type[MethodConfig]
    attach: Callable[[nn.Module, MethodConfig], None]
    description: str


METHODS: Registry[Method] = Registry("method")


def register_method(name: str, config: type[MethodConfig], description: str):
    def add(attach: Callable[[nn.Module, MethodConfig], None]):
        METHODS.register(name)(Method(name, config, attach, description))
        return attach

    return add


class Wrapper(nn.Module):
    """A module that adds to another, kept as `base_layer` (checkpoints.BASE_LAYER) so backbone keys survive."""

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer


def blocks(model: nn.Module) -> Iterator[nn.Module]:
    """Every transformer block: modules exposing norm1, attn, norm2 and mlp."""
    for module in model.modules():
        if all(hasattr(module, part) for part in ("norm1", "attn", "norm2", "mlp")):
            yield module


def for_each(model: nn.Module, kind: type[nn.Module], action: str) -> nn.Module:
    """Call `action` (e.g. "merge") on every submodule of `model` of type `kind`; returns `model`."""
    for module in model.modules():
        if isinstance(module, kind):
            getattr(module, action)()
    return model


def block_width(block: nn.Module) -> int:
    return block.attn.num_heads * block.attn.head_dim


def fill_slot(block: nn.Module, slot: str, module: nn.Module, method: str) -> None:
    """Put `module` in a block's residual-stream slot; one-line error if the block has none or it is taken."""
    current = getattr(block, slot, None)
    if current is None or getattr(block, "token_layout", None) is None:
        raise ValueError(f"{method} needs blocks with the {slot} slot and a token_layout; "
                         f"{type(block).__name__} has not both")
    if not isinstance(current, nn.Identity):
        raise ValueError(f"{method}: the block's {slot} slot already holds a {type(current).__name__}")
    setattr(block, slot, module)


class GridResidual(nn.Module):
    """x + branch(x) on a block's patch tokens seen as their (T, H, W) grid (class token, prompts kept
    aside and returned unchanged); subclasses define `branch` on channels-last (B, T, H, W, C) grids."""

    def __init__(self, layout) -> None:
        super().__init__()
        self.layout = layout  # the block's token_layout (a plain object, not a submodule)

    def branch(self, grid: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid, extra = self.layout.to_grid(x)  # (B, C, T, H, W)
        return self.layout.from_grid(grid + self.branch(grid.movedim(1, -1)).movedim(-1, 1), extra)
