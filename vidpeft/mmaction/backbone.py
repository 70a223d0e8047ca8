"""`vidpeft.PEFTBackbone`: a vidpeft backbone with a PEFT method, as an mmaction2 backbone."""
from __future__ import annotations

import torch
from mmengine.logging import print_log
from torch import nn

import vidpeft

from .registry import MODELS

# How the pooled features are shaped for the recogniser's head.
OUT_FORMATS = ("NCTHW", "NC")


@MODELS.register_module()
class PEFTBackbone(nn.Module):
    """`vidpeft.build_model(arch, method, **method_cfg)` without its classifier.

    The recogniser's `cls_head` classifies, so the vidpeft head is dropped: the trainable
    parameters are exactly the method's (all of them for `full`, none for `linear`).
    `pretrained` is loaded here, at construction, so that a checkpoint holding only the
    trainable tensors (see `vidpeft.PEFTCheckpointHook`) also tests and resumes: mmengine's
    Runner calls `init_weights` only before training (and this module has none to call).

    forward: `(N, 3, T, H, W)` -> pooled, normalised features, shaped `(N, C, 1, 1, 1)` for
    `out_format='NCTHW'` (what `I3DHead` and mmaction2's Video Swin configs expect: its
    average pool is then the identity) or `(N, C)` for `'NC'` (`TimeSformerHead`, as in
    mmaction2's VideoMAE configs). `with_cp`: activation checkpointing per block, as
    mmaction2's own backbones name it.
    """

    def __init__(self, arch: str, method: str = "full", method_cfg: dict | None = None,
                 pretrained: str | None = None, backbone_cfg: dict | None = None,
                 out_format: str = "NCTHW", with_cp: bool = False) -> None:
        super().__init__()
        if out_format not in OUT_FORMATS:
            raise ValueError(f"PEFTBackbone: out_format {out_format!r} is not one of {', '.join(OUT_FORMATS)}")
        model = vidpeft.build_model(arch, method, num_classes=1, backbone_options=backbone_cfg,
                                    **(method_cfg or {}))
        model.head = nn.Identity()  # before loading: a checkpoint's head is reported as unused
        if pretrained is not None:
            print_log(str(vidpeft.load_pretrained(model, pretrained)), logger="current")
        model.set_grad_checkpointing(with_cp)
        self.model = model
        self.out_format = out_format
        self.num_features: int = model.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(x)
        return features if self.out_format == "NC" else features[:, :, None, None, None]
