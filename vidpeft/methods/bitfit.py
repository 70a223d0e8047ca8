"""BitFit: train every bias of the backbone.

The V-PETL benchmark counts Video Swin's relative position bias tables as biases
(953,160 of its 1.09M on Swin-B); `rel_pos_tables=False` leaves them frozen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from .base import MethodConfig, register_method

REL_POS_TABLE = "relative_position_bias_table"


@dataclass
class BitFitConfig(MethodConfig):
    rel_pos_tables: bool = field(default=True, metadata={
        "help": "BitFit: also train Video Swin's relative position bias tables (as V-PETL counts them)"})


def is_bias(name: str, rel_pos_tables: bool) -> bool:
    # VideoMAE keeps its q/v biases as `q_bias` / `v_bias` beside a bias-free qkv Linear.
    return name == "bias" or name.endswith("_bias") or (rel_pos_tables and name == REL_POS_TABLE)


@register_method("bitfit", BitFitConfig, "train every bias of the backbone")
def attach(model: nn.Module, cfg: BitFitConfig) -> None:
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if is_bias(name, cfg.rel_pos_tables):
                parameter.requires_grad_(True)
