"""The errors outpool raises on bad input.

Every error a user can cause is an ``OutpoolError``: the CLI prints its message as one sentence and
exits non-zero, never a traceback. Messages name the file, line and field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class OutpoolError(Exception):
    """Base class of every error caused by bad input or a bad request."""


class DataError(OutpoolError):
    """A file or value that cannot be read or does not follow its documented format."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.line = line
        self.field = field
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f", line {line}"
            if field is not None:
                where += f", field '{field}'"
            where += ": "
        elif field is not None:
            where = f"field '{field}': "
        super().__init__(where + message)


class UnknownNameError(OutpoolError, KeyError):
    """A name (attribute, registry entry, config key) that is not one of the valid ones."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} '{name}'; valid: {', '.join(self.valid) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class ConfigError(OutpoolError):
    """A configuration file or override that does not match the config's fields."""
