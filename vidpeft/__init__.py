"""vidpeft: parameter-efficient fine-tuning of video action-recognition models.

    model = vidpeft.build_model("videoswin-b", "bapat", num_classes=174)
    vidpeft.load_pretrained(model, "swin_base_patch244_window877_kinetics400_22k.pth")
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "vidpeft.model",
    "count_parameters": "vidpeft.model",
    "save_adapter": "vidpeft.model",
    "load_adapter": "vidpeft.model",
    "load_pretrained": "vidpeft.model",
    "BACKBONES": "vidpeft.backbones",
    "METHODS": "vidpeft.methods",
    "merge_lora": "vidpeft.methods",
    "unmerge_lora": "vidpeft.methods",
    "merge_dora": "vidpeft.methods",
    "unmerge_dora": "vidpeft.methods",
    "fold_prefix": "vidpeft.methods",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Lazy, so `import vidpeft` (e.g. by vidpeft-prep) does not import torch.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidpeft' has no attribute {name!r}")
