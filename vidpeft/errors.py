"""Errors caused by what the user gave (a flag, a file, a config key), as opposed to bugs.

The command-line tools print a `UserError` as one line and exit 2; any other exception keeps its
traceback. They subclass ValueError (and KeyError / FileNotFoundError where that is what they are),
so code catching the builtin types keeps working.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input; the message names the file, flag or key and says what to do."""


class UnknownName(UserError, KeyError):
    """A name that is not registered (method, backbone, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class UnknownOption(UserError, TypeError):
    """An option or config key that does not exist; the message lists the known ones."""
