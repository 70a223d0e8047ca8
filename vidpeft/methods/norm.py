"""NormTuning (a baseline of Mona's tables): train the weight and bias of every LayerNorm."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .base import MethodConfig, register_method


@dataclass
class NormConfig(MethodConfig):
    pass


@register_method("norm", NormConfig, "train every LayerNorm's weight and bias (NormTuning)")
def attach(model: nn.Module, cfg: NormConfig) -> None:
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.requires_grad_(True)
