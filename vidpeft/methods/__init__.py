"""PEFT methods, one file each, registered by name in METHODS."""
from . import adaptformer, bapat, bitfit, full, linear, lora, mona, patt, prefix, st_adapter  # noqa: F401  (registration)
from .base import METHODS, Method, MethodConfig, blocks, canonical_key
from .lora import merge as merge_lora, unmerge as unmerge_lora
from .prefix import fold as fold_prefix

__all__ = ["METHODS", "Method", "MethodConfig", "blocks", "canonical_key", "merge_lora", "unmerge_lora", "fold_prefix"]
