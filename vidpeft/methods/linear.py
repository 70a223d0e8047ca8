"""Linear probe ("frozen" in the V-PETL table): only the classification head is trained."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .base import MethodConfig, register_method


@dataclass
class LinearConfig(MethodConfig):
    pass


@register_method("linear", LinearConfig, "frozen backbone, trained head (linear probe)")
def attach(model: nn.Module, cfg: LinearConfig) -> None:
    """Nothing to add: build_model already froze the backbone and unfreezes the head."""
