"""Full fine-tuning: every backbone parameter is trained."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .base import MethodConfig, register_method


@dataclass
class FullConfig(MethodConfig):
    pass


@register_method("full", FullConfig, "train every parameter")
def attach(model: nn.Module, cfg: FullConfig) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
