"""Backbone registry and the facts each backbone carries (see docs/ARCHITECTURE.md).

`BACKBONES.get(name)(num_classes=N, **kw)` builds a model; `backbone_info(name)` says what
the rest of vidpeft may know about it (family, default clip length, input normalisation,
per-family method defaults) without testing its name."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from torch import nn

from vidpeft.backbones import timm_image, videomae, videoswin
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_defaults", MappingProxyType(dict(self.method_defaults)))


BACKBONES: Registry = Registry("backbone", resolve=timm_image.resolve)  # + timm/<model name>
_INFO: dict[str, BackboneInfo] = {}


def register_backbone(name: str, build: Callable[..., nn.Module], info: BackboneInfo) -> None:
    """Register `build(num_classes=N, **kw) -> model` under `name` with its facts."""
    BACKBONES.register(name)(build)
    _INFO[name] = info


def backbone_info(name: str) -> BackboneInfo:
    BACKBONES.get(name)  # the registry's one-line error for an unknown name
    return _INFO[name] if name in _INFO else image_info(timm_image.timm_name_of(name))


def image_info(timm_name: str) -> BackboneInfo:
    """A timm image model applied frame-wise: 8 frames (AIM's clips), timm's mean/std for the weights."""
    mean, std = timm_image.normalisation(timm_name)
    return BackboneInfo(timm_image.family_of(timm_name), 8, mean, std, {"patt_dim": 32}, frame_wise=True)


def build_backbone(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered backbone with a fresh `num_classes`-way head."""
    return BACKBONES.get(name)(num_classes=num_classes, **kwargs)


# V-PETL's settings: PATT width 128 on Video Swin, 32 on VideoMAE; clip length 16 for VideoMAE
# (its pre-training), 8 for Video Swin (the benchmark's); the micro test models take 8 frames.
for _size in videomae.SIZES:
    register_backbone(f"videomae-{_size}", videomae.factory(_size),
                      BackboneInfo(videomae.VideoMAE.family, 8 if _size == "micro" else 16, method_defaults={"patt_dim": 32}))
for _size in videoswin.SIZES:
    register_backbone(f"videoswin-{_size}", videoswin.factory(_size),
                      BackboneInfo(videoswin.VideoSwin.family, 8, method_defaults={"patt_dim": 128}))
for _alias, (_timm_name, _defaults) in timm_image.ALIASES.items():
    register_backbone(_alias, timm_image.factory(_timm_name, _defaults), image_info(_timm_name))


__all__ = ["BACKBONES", "BackboneInfo", "backbone_info", "build_backbone", "register_backbone"]
