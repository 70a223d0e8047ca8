"""Checkpoint formats: what a family module declares about the files it loads (timm's
`checkpoint_filter_fn` pattern: the family owns its converters).

A `Format` is recognised from the keys of a file (never its name) and renames them to the
family's own names. Each family module lists its formats (`FORMATS`, most specific first);
`vidpeft/backbones/__init__.py` registers the families' lists in the detection order it documents,
and `FORMATS` here is searched in that order, the first detector that matches winning."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Format:
    name: str
    family: str  # the models it loads into (their `family`)
    detect: Callable[[set[str]], bool]
    convert: Callable[[StateDict], StateDict]
    loads_head: bool = True  # False: the source's head is for another task and is never loaded
    # image weights in timm's (or the release's) names: the model converts them with timm's own
    # functions (model.adapt_checkpoint), which need the model (position embedding sizes, ...)
    by_model: bool = False


FORMATS: list[Format] = []


def register_formats(*formats: Format) -> None:
    """Append formats to the detection order."""
    FORMATS.extend(formats)


def rename(sd: StateDict, rules: list[tuple[str, str]], drop: tuple[str, ...] = ()) -> StateDict:
    """Apply regex substitutions in order to every key; keys matching a `drop` regex are removed."""
    out = {}
    for key, value in sd.items():
        if any(re.search(pattern, key) for pattern in drop):
            continue
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


# Buffers some releases save but which we compute: position tables, relative indices, masks.
COMPUTED = (r"(^|\.)pos_embed$", r"position_embeddings$", r"relative_position_index$", r"attn_mask$",
            r"^data_preprocessor\.")


def has(*patterns: str) -> Callable[[set[str]], bool]:
    """Detector: every pattern matches at least one key."""
    return lambda keys: all(any(re.search(p, k) for k in keys) for p in patterns)


def lacks(*patterns: str) -> Callable[[set[str]], bool]:
    """Detector: no key matches any pattern."""
    return lambda keys: not any(re.search(p, k) for p in patterns for k in keys)


def both(*detectors: Callable[[set[str]], bool]) -> Callable[[set[str]], bool]:
    return lambda keys: all(detect(keys) for detect in detectors)


def same(sd: StateDict) -> StateDict:
    return dict(sd)


def fuse_qkv(sd: StateDict, names: tuple[str, str, str], out: str) -> None:
    """Separate query / key / value projections (key prefixes `names`) -> one fused `out` projection,
    in place; biases are fused when all three have one."""
    for suffix in ("weight", "bias"):
        keys = [f"{name}.{suffix}" for name in names]
        if all(key in sd for key in keys):
            sd[f"{out}.{suffix}"] = torch.cat([sd.pop(key) for key in keys])
