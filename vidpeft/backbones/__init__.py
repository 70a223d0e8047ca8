"""Backbone families, one module each; importing this package registers them all.

A family module registers its names with their facts at import (`register_backbone`,
vidpeft/backbones/base.py) and declares its checkpoint formats (`FORMATS`, vidpeft/backbones/formats.py),
which are registered below in the detection order, the first matching format winning:
V-JEPA 2 first (its names, a qkv bias and no position table or class token, would pass for a timm
ViT), then VideoPrism (names of its own), then the image models (their `image.` names, and timm's keys
with a class token or a qkv bias, which the catch-all VideoMAE fine-tuning format `blocks.N.attn.qkv.weight`
would otherwise take), then VideoMAE and Video Swin."""
from __future__ import annotations

from vidpeft.backbones import timm_image, videomae, videoprism, videoswin, vjepa2
from vidpeft.backbones.base import (
    BACKBONES, IMAGENET_MEAN, IMAGENET_STD, Backbone, BackboneInfo, backbone_info, build_backbone, micro_backbones,
    register_backbone,
)
from vidpeft.backbones.formats import register_formats

register_formats(*vjepa2.FORMATS, *videoprism.FORMATS, *timm_image.FORMATS, *videomae.FORMATS, *videoswin.FORMATS)

__all__ = ["BACKBONES", "IMAGENET_MEAN", "IMAGENET_STD", "Backbone", "BackboneInfo", "backbone_info",
           "build_backbone", "micro_backbones", "register_backbone"]
