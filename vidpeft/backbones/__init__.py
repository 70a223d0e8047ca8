"""Backbone families, one module each; importing this package registers them all.

A family module registers its names with their facts (`register_backbone`, vidpeft/backbones/base.py)
and its checkpoint formats (`register_formats`, vidpeft/backbones/formats.py). The imports below are
in checkpoint detection order, the first matching format winning: image models first (their
`image.` names, and timm's keys with a class token or a qkv bias, which the catch-all VideoMAE
fine-tuning format `blocks.N.attn.qkv.weight` would otherwise take), then the video families."""
from __future__ import annotations

from vidpeft.backbones import timm_image, videomae, videoswin  # noqa: F401  (registration, in detection order)
from vidpeft.backbones.base import (
    BACKBONES, IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneInfo, backbone_info, build_backbone, micro_backbones,
    register_backbone,
)

__all__ = ["BACKBONES", "IMAGENET_MEAN", "IMAGENET_STD", "Backbone", "BackboneInfo", "backbone_info",
           "build_backbone", "micro_backbones", "register_backbone"]
