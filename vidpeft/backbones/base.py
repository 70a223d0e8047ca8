"""The backbone registry, the facts each backbone carries and the contract every model keeps.

A family module registers its names at import (`register_backbone(name, build, info)`);
`BACKBONES.get(name)(num_classes=N, **kw)` builds a model; `backbone_info(name)` says what the
rest of vidpeft may know about it without testing its name; `micro_backbones()` lists the tiny
configurations tests and demos run. `Backbone` is the contract (docs/ARCHITECTURE.md) as a
`typing.Protocol`, checked on every registered backbone by tests/test_backbones.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import torch
from torch import nn

from vidpeft.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneInfo:
    family: str  # "videomae", "videoswin", ...: what checkpoints and recipes are keyed by
    frames: int  # default clip length
    mean: tuple[float, float, float] = IMAGENET_MEAN  # input normalisation of the pretrained weights
    std: tuple[float, float, float] = IMAGENET_STD
    # method option name -> default on this backbone (fills options left at None)
    method_defaults: Mapping[str, Any] = field(default_factory=dict)
    frame_wise: bool = False  # an image model applied to each frame
    input_size: int = 224  # frame side of the pretrained weights (the default crop)
    micro: bool = False  # a tiny random-weight configuration for tests and demos

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_defaults", MappingProxyType(dict(self.method_defaults)))


Builder = Callable[..., nn.Module]
# names made on demand (timm/<model>): name -> (build, info), or None when the name is not of its form
Resolver = Callable[[str], "tuple[Builder, BackboneInfo] | None"]
_INFO: dict[str, BackboneInfo] = {}
_RESOLVERS: list[Resolver] = []


def _resolve(name: str) -> Builder | None:
    found = _resolve_with_info(name)
    return None if found is None else found[0]


def _resolve_with_info(name: str) -> tuple[Builder, BackboneInfo] | None:
    return next((found for found in map(lambda resolve: resolve(name), _RESOLVERS) if found is not None), None)


BACKBONES: Registry = Registry("backbone", resolve=_resolve)


def register_backbone(name: str, build: Builder, info: BackboneInfo) -> None:
    """Register `build(num_classes=N, **kw) -> model` under `name` with its facts."""
    BACKBONES.register(name)(build)
    _INFO[name] = info


def register_resolver(resolve: Resolver) -> None:
    """Add a source of names built on demand (not listed by `BACKBONES.names()`)."""
    _RESOLVERS.append(resolve)


def backbone_info(name: str) -> BackboneInfo:
    BACKBONES.get(name)  # the registry's one-line error for an unknown name
    return _INFO[name] if name in _INFO else _resolve_with_info(name)[1]


def micro_backbones() -> list[str]:
    """The registered tiny configurations (one or more per family), for tests and demos."""
    return [name for name in BACKBONES.names() if _INFO[name].micro]


def build_backbone(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered backbone with a fresh `num_classes`-way head."""
    return BACKBONES.get(name)(num_classes=num_classes, **kwargs)


@runtime_checkable
class Backbone(Protocol):
    """What methods, the engine and checkpoint loading rely on (docs/ARCHITECTURE.md, "Backbone contract").

    Blocks (`blocks`) each have `norm1`, `attn`, `norm2`, `mlp`, the residual slots `pre_attn`,
    `post_attn`, `post_mlp` and a `token_layout`; every `attn` has a fused `qkv` Linear, `proj`,
    `num_heads`, `head_dim`, the `kv_prefix` slot and `project_kv(tokens)`."""

    family: str
    num_features: int
    head: nn.Linear
    head_norm: nn.Module
    head_drop: nn.Module
    patch_embed: nn.Module
    extra_tokens: nn.Module | None
    token_grid: tuple[int, int, int] | None

    @property
    def blocks(self) -> nn.Module: ...

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def reset_classifier(self, num_classes: int) -> None: ...

    def init_head(self) -> None: ...

    def set_grad_checkpointing(self, enable: bool = True) -> None: ...

    def no_weight_decay(self) -> set[str]: ...

    def final_norm(self) -> nn.Module: ...
