"""`vidpeft.PEFTCheckpointHook`: checkpoints that hold only the trainable tensors."""
from __future__ import annotations

from collections import OrderedDict

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from .registry import HOOKS

TRAINABLE_ONLY = "vidpeft_trainable_only"  # set in checkpoint["meta"] by the hook


def _model(runner) -> nn.Module:
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def _trainable(model: nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


@HOOKS.register_module()
class PEFTCheckpointHook(Hook):
    """Save only the parameters that train (the method's and the head's), and load such checkpoints.

    Add `custom_hooks = [dict(type='vidpeft.PEFTCheckpointHook')]`. Every checkpoint the
    runner writes (periodic, best, last) then holds the trainable parameters plus
    optimizer, scheduler and meta. When such a checkpoint is loaded (`load_from`, `resume`), the frozen tensors
    are taken from the model as built, i.e. from its `pretrained` backbone, so loading
    stays complete and mmengine reports only genuinely missing trainable keys.
    """

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        keep = _trainable(_model(runner))
        checkpoint["state_dict"] = OrderedDict(
            (key, value) for key, value in checkpoint["state_dict"].items() if key in keep)
        checkpoint["meta"][TRAINABLE_ONLY] = True

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not checkpoint.get("meta", {}).get(TRAINABLE_ONLY):
            return
        model = _model(runner)
        trainable = _trainable(model)
        state = checkpoint["state_dict"]
        for key, value in model.state_dict().items():
            if key not in trainable:
                state.setdefault(key, value)
