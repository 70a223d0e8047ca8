"""Command-line flags generated from the config's fields (a field with `flag=` metadata is a flag of
vidpeft-train; one with `view=True` also of vidpeft-test and vidpeft-predict)."""
from __future__ import annotations

import argparse
import typing
from dataclasses import Field
from typing import Any

from ..data.config import DataConfig, config_key
from .train import TrainConfig
from .values import PARSERS, flag_fields, option_type


def _config_fields() -> list[tuple[str, type, Field]]:
    """(dotted key, section class, field) of every field that has a flag."""
    return ([(f"train.{f.name}", TrainConfig, f) for f in flag_fields(TrainConfig)]
            + [(config_key(f.name), DataConfig, f) for f in flag_fields(DataConfig)])


FLAG_OF_KEY = {key: f.metadata["flag"] for key, _, f in _config_fields()}


def dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def add_config_flags(parser: argparse.ArgumentParser, views_only: bool = False, also: tuple[str, ...] = ()) -> None:
    """The config's flags (all of them, or only the view flags plus the fields named in `also`), typed
    and documented by their fields; unset flags are None (the recipe's or the run's value stays)."""
    group = parser.add_argument_group("run configuration (default: the recipe's value, or the run's)")
    for _, section, f in _config_fields():
        if views_only and not f.metadata["view"] and f.name not in also:
            continue
        flag, kind = f.metadata["flag"], option_type(typing.get_type_hints(section)[f.name])
        if kind is bool:  # --flag / --no-flag (a recipe's true can be turned off)
            group.add_argument(flag, dest=dest(flag), action=argparse.BooleanOptionalAction, default=None,
                               help=f.metadata["help"])
        else:
            group.add_argument(flag, dest=dest(flag), type=PARSERS.get(kind, str), default=None,
                               help=f.metadata["help"])


def config_flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config key -> value of every config flag on `args` (None where not given)."""
    return {key: getattr(args, dest(flag)) for key, flag in FLAG_OF_KEY.items() if hasattr(args, dest(flag))}


def view_options(args: argparse.Namespace) -> dict[str, Any]:
    """DataConfig field -> value of the data flags on `args`, for RunConfig.with_views."""
    return {f.name: getattr(args, dest(f.metadata["flag"])) for f in flag_fields(DataConfig)
            if hasattr(args, dest(f.metadata["flag"]))}
