"""BAPAT (V-PETL's "Swin-BAPAT"): AdaptFormer beside the MLP plus PATT on K and V."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from . import adaptformer, patt
from .base import register_method


@dataclass
class BAPATConfig(adaptformer.AdaptFormerConfig, patt.PATTConfig):
    pass


@register_method("bapat", BAPATConfig, "AdaptFormer + parallel attention (PATT) on K and V")
def attach(model: nn.Module, cfg: BAPATConfig) -> None:
    adaptformer.attach(model, cfg)
    patt.attach(model, cfg)
