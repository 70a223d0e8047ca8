"""Config values: the one table that turns text (a flag, a `--set`, a YAML string) into a field's type,
the field helper whose metadata carries the help and the flag, and the error that names a bad value."""
from __future__ import annotations

import argparse
import difflib
import types
import typing
from dataclasses import Field, field, fields
from typing import Any, Callable, Iterable

from ..errors import UnknownOption, UserError

TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    if text.lower() in TRUE + FALSE:
        return text.lower() in TRUE
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


# field type -> parser of its text form (command line, `--set`, YAML strings such as 1e-3)
PARSERS: dict[Any, Callable[[str], Any]] = {int: int, float: float, str: str, bool: parse_bool,
                                            tuple[str, ...]: parse_names}


def option_type(annotation: Any) -> Any:
    """The value type of a config field: `X | None` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def option(default: Any, help: str, flag: str | None = None, view: bool = False) -> Any:
    """A config field carrying its help; `flag` (e.g. "--clips") gives it a command-line flag,
    `view` shares that flag with vidpeft-test and vidpeft-predict (how a test view is made)."""
    return field(default=default, metadata={"help": help, "flag": flag, "view": view})


class InvalidValue(UserError):
    """A config value out of its range or of the wrong type; `key` is the field it belongs to."""

    def __init__(self, key: str, detail: str, flag: str | None = None) -> None:
        super().__init__(f"{flag} {detail}" if flag else f"{key}: {detail}")
        self.key, self.detail = key, detail


def require(key: str, ok: bool, detail: str) -> None:
    if not ok:
        raise InvalidValue(key, detail)


def coerce_fields(config: Any, section: str) -> None:
    """Turn text values of a frozen dataclass (YAML `1e-3`, `--set` strings) into their field types."""
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value, kind = getattr(config, f.name), option_type(hints[f.name])
        if value is None or kind not in PARSERS or isinstance(value, bool) and kind is not bool:
            continue
        try:
            if kind in (int, float) and not isinstance(value, str):
                converted = kind(value)
                if kind is int and converted != value:
                    raise ValueError
            else:
                converted = PARSERS[kind](value) if isinstance(value, str) else value
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            raise InvalidValue(f"{section}.{f.name}", f"{value!r} is not a valid {kind.__name__} "
                               f"({f.metadata.get('help', '')})") from None
        object.__setattr__(config, f.name, converted)


def check_known(section: str, given: Iterable[str], known: Iterable[str]) -> None:
    """One-line error for keys that are not fields, suggesting the closest known one."""
    known = list(known)
    unknown = sorted(set(given) - set(known))
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f"did you mean {section}.{close[0]}? " if close else ""
        raise UnknownOption(f"unknown key {section}.{unknown[0]}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                            + f"; {hint}known {section} keys: {', '.join(known)}")


def field_names(config: type) -> list[str]:
    return [f.name for f in fields(config)]


def flag_fields(config: type) -> list[Field]:
    return [f for f in fields(config) if f.metadata.get("flag")]
