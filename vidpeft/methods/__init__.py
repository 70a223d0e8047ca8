"""PEFT methods, one file each, registered by name in METHODS.

Every module of this package is imported here, so adding a method is adding its file."""
import importlib
import pkgutil

from .base import METHODS, Method, MethodConfig, blocks, canonical_key

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # registration

from .dora import merge as merge_dora, unmerge as unmerge_dora  # noqa: E402
from .lora import merge as merge_lora, unmerge as unmerge_lora  # noqa: E402
from .prefix import fold as fold_prefix  # noqa: E402

__all__ = ["METHODS", "Method", "MethodConfig", "blocks", "canonical_key", "merge_lora", "unmerge_lora", "merge_dora", "unmerge_dora",
           "fold_prefix"]
