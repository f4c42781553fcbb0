"""Metadata filters shared by every retriever.

A filter is a dict ``{field: condition}``; all fields must match. A condition is a plain value (equality) or a
dict of operators: ``eq``, ``ne``, ``in``, ``nin``, ``gt``, ``gte``, ``lt``, ``lte``, ``exists`` (a leading ``$``
is accepted too, Mongo style). When a document's value is a list, a condition matches if any element matches.
Example: ``{"year": {"gte": 2000, "lt": 2010}, "lang": "en", "tags": {"in": ["ir", "nlp"]}}``.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError

Filter = Mapping[str, Any]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
OPERATORS = (*_COMPARE, "in", "nin", "exists")


class FilterError(RetrievekitError, ValueError):
    pass


def _compare(op: str, arg: Any) -> Callable[[Any], bool]:
    fn = _COMPARE[op]

    def check(v: Any) -> bool:
        if v is None:
            return op == "ne"
        try:
            return bool(fn(v, arg))
        except TypeError:  # e.g. a string against a number: no match, not an error
            return op == "ne"

    return check


def _membership(members: set[str], positive: bool) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return (v is not None and json.dumps(v, sort_keys=True) in members) == positive

    return check


def _exists(want: bool) -> Callable[[Any], bool]:
    return lambda v: (v is not None) == want


def _predicate(field: str, condition: Any) -> Callable[[Any], bool]:
    if not isinstance(condition, Mapping):
        return _predicate(field, {"eq": condition})
    # (check, negative): on a list value a positive condition needs one matching element, a negative one
    # (ne, nin) needs every element to pass — "tags nin [x]" means no tag is x.
    checks: list[tuple[Callable[[Any], bool], bool]] = []
    for raw_op, arg in condition.items():
        op = raw_op.lstrip("$")
        if op in _COMPARE:
            checks.append((_compare(op, arg), op == "ne"))
        elif op in ("in", "nin"):
            if not isinstance(arg, (list, tuple, set, frozenset)):
                raise FilterError(f"filter on {field!r}: {raw_op!r} needs a list, got {arg!r}")
            checks.append((_membership({json.dumps(a, sort_keys=True) for a in arg}, op == "in"), op == "nin"))
        elif op == "exists":
            checks.append((_exists(bool(arg)), False))
        else:
            raise FilterError(f"filter on {field!r}: unknown operator {raw_op!r}; valid: {', '.join(OPERATORS)}")

    def match(value: Any) -> bool:
        if isinstance(value, list) and value:
            return all((all if negative else any)(c(v) for v in value) for c, negative in checks)
        return all(c(None if isinstance(value, list) else value) for c, _ in checks)

    return match


def compile_filter(spec: Filter) -> list[tuple[str, Callable[[Any], bool]]]:
    if not isinstance(spec, Mapping):
        raise FilterError(f"a filter must be a dict of field -> condition, got {type(spec).__name__}")
    return [(field, _predicate(field, cond)) for field, cond in spec.items()]


def filter_key(spec: Filter) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


def evaluate_filter(spec: Filter, column: Callable[[str], list[Any]], n_docs: int) -> np.ndarray:
    """Boolean mask (uint8) of the documents that match ``spec``; ``column(field)`` returns one value per document."""
    mask = np.ones(n_docs, dtype=bool)
    for field, match in compile_filter(spec):
        values = column(field)
        mask &= np.fromiter((match(v) for v in values), dtype=bool, count=n_docs)
    return mask.astype(np.uint8)
