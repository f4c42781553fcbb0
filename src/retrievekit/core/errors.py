"""Exceptions raised by retrievekit. Every error names what was wrong and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class RetrievekitError(Exception):
    """Base class of all retrievekit errors."""


class InputFormatError(RetrievekitError, ValueError):
    """Bad input data: malformed line, bad encoding, missing or duplicate id, ...

    ``path`` and ``line`` (1-based) locate the problem when known.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "")
            where += ": "
        super().__init__(where + message)


class CollectionError(RetrievekitError):
    """The collection folder is missing, of an unknown format, or damaged."""


class CollectionLockedError(CollectionError):
    """Another process holds the collection's writer lock."""


class MissingExtraError(RetrievekitError, ImportError):
    """An optional dependency is needed; the message names the extra that installs it."""


def require(module: str, extra: str) -> Any:
    """Import an optional module or raise ``MissingExtraError`` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"this feature needs the optional package {module!r}; install it with: "
            f"pip install 'retrievekit[{extra}]'"
        ) from exc
