"""The `vidpeft` scope under mmaction2's registries, so configs name our types `vidpeft.<Name>`."""
from mmaction.registry import DATASETS as MMACTION_DATASETS
from mmaction.registry import HOOKS as MMACTION_HOOKS
from mmaction.registry import MODELS as MMACTION_MODELS
from mmengine.registry import Registry

MODELS = Registry("model", parent=MMACTION_MODELS, scope="vidpeft")
HOOKS = Registry("hook", parent=MMACTION_HOOKS, scope="vidpeft")
DATASETS = Registry("dataset", parent=MMACTION_DATASETS, scope="vidpeft")
