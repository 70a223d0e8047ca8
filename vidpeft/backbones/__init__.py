"""Backbone registry: name -> factory(num_classes, **kwargs) -> nn.Module (see docs/ARCHITECTURE.md)."""
from __future__ import annotations

from torch import nn

from vidpeft.backbones import timm_image, videomae, videoswin
from vidpeft.registry import Registry

BACKBONES: Registry = Registry("backbone", resolve=timm_image.resolve)  # + timm/<model name>

for _size in videomae.SIZES:
    BACKBONES.register(f"videomae-{_size}")(videomae.factory(_size))
for _size in videoswin.SIZES:
    BACKBONES.register(f"videoswin-{_size}")(videoswin.factory(_size))
for _alias, (_timm_name, _defaults) in timm_image.ALIASES.items():
    BACKBONES.register(_alias)(timm_image.factory(_timm_name, _defaults))


def build_backbone(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a registered backbone with a fresh `num_classes`-way head."""
    return BACKBONES.get(name)(num_classes=num_classes, **kwargs)


__all__ = ["BACKBONES", "build_backbone"]
