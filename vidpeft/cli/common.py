"""Argument helpers shared by the console scripts."""
from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import MISSING, Field, fields
from typing import Any, NoReturn

from ..config.values import PARSERS, option_type

class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`error: argument --lr: invalid float value: 'abc'`), no usage dump;
    every vidpeft command parses with it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def method_fields() -> dict[str, tuple[Any, str, list[tuple[str, Any]]]]:
    """Every option of every registered method: name -> (type, help, [(method, default)])."""
    from ..methods import METHODS

    options: dict[str, tuple[Any, str, list[tuple[str, Any]]]] = {}
    for name in METHODS.names():
        config = METHODS.get(name).config
        hints = typing.get_type_hints(config)
        for f in fields(config):
            kind = option_type(hints[f.name])
            if kind not in PARSERS:
                raise TypeError(f"{config.__name__}.{f.name}: option type {kind} has no command-line form")
            known = options.setdefault(f.name, (kind, f.metadata.get("help", ""), []))
            if known[0] != kind:
                raise TypeError(f"option {f.name} is {known[0]} in one method and {kind} in {name}")
            known[2].append((name, _default(f)))
    return options


def _default(f: Field) -> Any:
    value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    if value is None:
        return "the backbone's"
    return ",".join(value) if isinstance(value, tuple) else value


def method_help() -> str:
    """Help of a --method flag: every registered method with its description."""
    from ..methods import METHODS

    return "; ".join(f"{name}: {METHODS.get(name).description}" for name in METHODS.names())


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """A flag for every option of every registered method, typed and documented by its config field."""
    group = parser.add_argument_group("method options (only those of the chosen method apply)")
    for name, (kind, help_text, users) in method_fields().items():
        values = {str(default) for _, default in users}
        if len(values) == 1:
            defaults = f"{', '.join(m for m, _ in users)}; default {values.pop()}"
        else:
            defaults = "; ".join(f"{method} default {default}" for method, default in users)
        metavar = {bool: "{true,false}", tuple[str, ...]: "A,B"}.get(kind)
        group.add_argument("--" + name.replace("_", "-"), dest=name, type=PARSERS[kind], default=None,
                           metavar=metavar, help=f"{help_text} [{defaults}]")


def method_options(args: argparse.Namespace, method: str | None = None) -> dict:
    """The method options given on the command line (unset ones keep the method's default);
    with `method`, only the options that method has."""
    given = {name: getattr(args, name) for name in method_fields() if getattr(args, name, None) is not None}
    if method is None:
        return given
    from ..methods import METHODS

    own = {f.name for f in fields(METHODS.get(method).config)}
    return {k: v for k, v in given.items() if k in own}


def fail(error: BaseException | str, status: int = 2) -> int:
    """Print a one-line error the way every vidpeft command does, and return its exit status."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"error: {message}", file=sys.stderr)
    return status
