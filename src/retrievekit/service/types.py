"""What every service request shares: the error type and the checks of common parameters (text, integers, search
mode, metadata filter). Errors name the parameter and what is accepted."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from retrievekit.collection import MODES
from retrievekit.core.errors import RetrievekitError

if TYPE_CHECKING:
    from retrievekit.collection import Collection
    from retrievekit.service.collections import AnyCollection

__all__ = ["MODES", "UNSET", "ServiceError", "Unset", "check_filter", "check_int", "check_mode", "check_text",
           "finite"]


class ServiceError(RetrievekitError, ValueError):
    """A request that cannot be served as asked. ``code`` is a short snake_case name (``bad_request``,
    ``mode_unavailable``, ``bad_filter``, ``bad_selector``, ``bad_compress``, ``rerank_unavailable``, ``not_found``,
    ``generator_unavailable``, ``generator_busy``); ``param`` names the request field at fault, when one is."""

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class Unset(enum.Enum):
    """Marks a field left out of a request (for fields where an explicit null means something)."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset.UNSET


def check_text(value: Any, name: str, *, max_chars: int, blank: bool = False) -> str:
    """A string of 1 to ``max_chars`` characters; ``blank``: whitespace only is allowed."""
    if not isinstance(value, str) or not (value if blank else value.strip()):
        raise ServiceError("bad_request", f"{name} must be a non-empty string", param=name)
    if len(value) > max_chars:
        raise ServiceError("bad_request", f"{name} is {len(value)} characters; the limit is {max_chars}", param=name)
    return value


def check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ServiceError("bad_request", f"{name} must be an integer from {low} to {high}, got {value!r}",
                           param=name)
    return value


def check_mode(col: AnyCollection, mode: str | None, name: str = "mode") -> str:
    """``mode`` (None: the collection's default) if this collection supports it; the modes are re-read each time,
    since another process may add an index while a server runs."""
    if mode is None:
        return col.default_mode
    if mode not in MODES:
        raise ServiceError("mode_unavailable", f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}",
                           param=name)
    from retrievekit.service.collections import collection_modes

    modes = collection_modes(col)
    if mode not in modes:
        kind = "sparse" if mode == "sparse" else "dense"
        raise ServiceError("mode_unavailable", f"mode {mode!r} is not available on this collection: it needs a "
                           f"{kind} index, which this collection does not have (available: {', '.join(modes)})",
                           param=name)
    return mode


def check_filter(value: Any, name: str = "filter", col: AnyCollection | None = None) -> dict[str, Any] | None:
    """A metadata filter (an object of field -> condition), compiled so a bad one fails before any work; an empty
    one is None. With ``col``: also checked against the collection's metadata fields (a field no document has, or
    a value of a type the field never holds, would match nothing without a word)."""
    from retrievekit.core.filters import FilterError, parse_filter
    from retrievekit.service.collections import is_sharded

    if value is None:
        return None
    if not isinstance(value, dict):
        raise ServiceError("bad_filter", f"{name} must be an object of field -> condition, got "
                           f"{type(value).__name__}", param=name)
    if not value:
        return None
    try:
        if is_sharded(col):
            col.check_filter(value)  # over every shard's fields
        elif col is not None:
            cast("Collection", col).snapshot().check_filter(value)
        else:
            parse_filter(value)
    except FilterError as exc:
        raise ServiceError("bad_filter", str(exc), param=name) from None
    return value


def finite(value: float) -> float:
    """JSON has no infinities or NaN: such a score is reported as 0."""
    return value if math.isfinite(value) else 0.0


def names(values: Sequence[str]) -> str:
    return ", ".join(values) or "none"
