"""Argument helpers shared by the console scripts."""
from __future__ import annotations

import argparse
import sys

# Method options settable from every CLI; None means "the method's default".
METHOD_OPTIONS = {
    "adapter_dim": (int, "AdaptFormer/BAPAT bottleneck width (default 64)"),
    "adapter_scale": (float, "AdaptFormer/BAPAT output scale (default 0.1)"),
    "adapter_input": (str, "AdaptFormer/BAPAT adapter input: residual (stream before norm2; default on VideoMAE) "
                      "or norm2 (the MLP's input; default on Swin)"),
    "patt_dim": (int, "PATT/BAPAT hidden width (default 128 on Swin, 32 on ViT)"),
    "patt_scale": (float, "PATT/BAPAT scale s (default 0.8)"),
    "patt_init": (str, "PATT initialisation: zero (default) or benchmark"),
    "rank": (int, "LoRA rank (default 16)"),
    "alpha": (float, "LoRA alpha; scale = alpha / rank (default 16)"),
    "targets": (str, "LoRA target slices, comma-separated among q,k,v (default q,v)"),
    "dropout": (float, "LoRA dropout on the update's input (default 0)"),
    "prefix_length": (int, "prefix-tuning: number of key/value tokens L (default 16)"),
    "prefix_hidden": (int, "prefix-tuning: hidden width m of the prefix MLP (default 128)"),
    "rel_pos_tables": (str, "BitFit: also train Swin's relative position tables (true/false, default true)"),
}


def add_method_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("method options (only those of the chosen method apply)")
    for name, (kind, help_text) in METHOD_OPTIONS.items():
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=help_text)


def method_options(args: argparse.Namespace) -> dict:
    options = {name: getattr(args, name) for name in METHOD_OPTIONS if getattr(args, name, None) is not None}
    if "targets" in options:
        options["targets"] = tuple(t.strip() for t in options["targets"].split(",") if t.strip())
    if "rel_pos_tables" in options:
        options["rel_pos_tables"] = options["rel_pos_tables"].lower() in ("1", "true", "yes")
    return options


def fail(error: BaseException | str, status: int = 2) -> int:
    """Print a one-line error the way every vidpeft command does, and return its exit status."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"error: {message}", file=sys.stderr)
    return status
