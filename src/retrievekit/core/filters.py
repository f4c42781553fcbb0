"""Metadata filters shared by every retriever.

A filter is a dict ``{field: condition}``; all fields must match. A condition is a plain value (equality) or a
dict of operators: ``eq``, ``ne``, ``in``, ``nin``, ``gt``, ``gte``, ``lt``, ``lte``, ``exists``, ``glob`` (a leading
``$`` is accepted too, Mongo style). When a document's value is a list, a condition matches if any element matches.
``glob`` matches string values as paths (a pattern, or a list of patterns of which one must match): ``*``, ``?``,
``[...]`` within a folder name, ``**`` across folders, a pattern without ``/`` at any depth (see core/globs.py).
Example: ``{"year": {"gte": 2000, "lt": 2010}, "lang": "en", "tags": {"in": ["ir", "nlp"]}}``,
``{"path": {"glob": "src/**/*.py"}, "kind": {"in": ["function", "method"]}}``.

Filters fail loudly: ``compile_filter`` rejects malformed or oversized filters, and ``check_fields`` rejects a
field no document has, or a value of a JSON type the field never holds (``{"year": {"gte": 2000}}`` against
``"2019"`` strings) — either would otherwise quietly match nothing.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from retrievekit.core.errors import RetrievekitError
from retrievekit.core.globs import GlobError, compile_glob

Filter = Mapping[str, Any]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_ORDER = ("gt", "gte", "lt", "lte")
OPERATORS = (*_COMPARE, "in", "nin", "exists", "glob")

# Bounds on one filter: each field costs a pass over a metadata column, so a request must not name thousands.
MAX_FIELDS = 64
MAX_IN_VALUES = 1024  # values of one in / nin list
MAX_GLOBS = 64  # patterns of one glob list
MAX_VALUE_DEPTH = 8  # nesting of a compared value (lists / objects inside a condition)
MAX_FILTER_CHARS = 65_536  # the filter as JSON


class FilterError(RetrievekitError, ValueError):
    pass


def json_type(value: Any) -> str:
    """The JSON type name of a metadata value: string, number, boolean, null, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object"


def value_types(value: Any) -> set[str]:
    """The types a filter compares a value as: a list counts as ``array`` and as each of its elements' types."""
    if isinstance(value, list):
        return {"array", *(json_type(v) for v in value)}
    return {json_type(value)}


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


def _glob(patterns: str | Sequence[str]) -> Callable[[Any], bool]:
    matchers = [compile_glob(g) for g in ([patterns] if isinstance(patterns, str) else patterns)]
    return lambda v: isinstance(v, str) and any(match(v) for match in matchers)


def _depth(value: Any) -> int:
    """Nesting depth of lists / dicts in ``value`` (iterative: a hostile filter must not exhaust the stack)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_VALUE_DEPTH:
                return deepest
            stack.extend((v, depth) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _conditions(field: str, condition: Any) -> dict[str, Any]:
    """``condition`` as {operator (no $): argument}, checked: FilterError naming the field and what is accepted."""
    if not isinstance(condition, Mapping):
        condition = {"eq": condition}
    if not condition:
        raise FilterError(f"filter on {field!r}: the condition is empty; give a value or operators "
                          f"({', '.join(OPERATORS)}), e.g. {{{field!r}: {{\"exists\": true}}}}")
    ops: dict[str, Any] = {}
    for raw_op, arg in condition.items():
        op = raw_op.lstrip("$") if isinstance(raw_op, str) else raw_op
        if op not in OPERATORS:
            raise FilterError(f"filter on {field!r}: unknown operator {raw_op!r}; valid: {', '.join(OPERATORS)}")
        if op in ops:
            raise FilterError(f"filter on {field!r}: operator {op!r} is given twice")
        if _depth(arg) > MAX_VALUE_DEPTH:
            raise FilterError(f"filter on {field!r}: the value of {raw_op!r} is nested deeper than "
                              f"{MAX_VALUE_DEPTH} levels")
        if op == "exists":
            if not isinstance(arg, bool):
                raise FilterError(f"filter on {field!r}: 'exists' takes true or false, got {arg!r}")
        elif op == "glob":
            patterns = [arg] if isinstance(arg, str) else arg
            if not isinstance(patterns, (list, tuple)) or not patterns or \
                    not all(isinstance(g, str) for g in patterns):
                raise FilterError(f"filter on {field!r}: 'glob' takes a path pattern such as \"src/**/*.py\" or a "
                                  f"list of them, got {arg!r}")
            if len(patterns) > MAX_GLOBS:
                raise FilterError(f"filter on {field!r}: 'glob' lists {len(patterns)} patterns; the limit is "
                                  f"{MAX_GLOBS}")
            for pattern in patterns:
                try:
                    compile_glob(pattern)
                except GlobError as exc:
                    raise FilterError(f"filter on {field!r}: {exc}") from None
        elif op in ("in", "nin"):
            if not isinstance(arg, (list, tuple, set, frozenset)):
                raise FilterError(f"filter on {field!r}: {raw_op!r} needs a list, got {arg!r}")
            if len(arg) > MAX_IN_VALUES:
                raise FilterError(f"filter on {field!r}: {raw_op!r} lists {len(arg)} values; the limit is "
                                  f"{MAX_IN_VALUES}")
        elif arg is None:
            raise FilterError(f"filter on {field!r}: {raw_op!r} with null matches nothing useful; use "
                              f"{{\"exists\": false}} for documents without {field!r}, {{\"exists\": true}} for "
                              "those with it")
        elif op in _ORDER and json_type(arg) not in ("number", "string"):
            raise FilterError(f"filter on {field!r}: {raw_op!r} compares with a number or a string, got {arg!r}")
        elif isinstance(arg, (list, tuple)):
            raise FilterError(f"filter on {field!r}: {raw_op!r} takes one value, got a list; to match any of "
                              f"several values use {{\"in\": {json.dumps(list(arg), default=str)[:80]}}}")
        ops[op] = arg
    return ops


def _predicate(field: str, ops: Mapping[str, Any]) -> Callable[[Any], bool]:
    # (check, negative): on a list value a positive condition needs one matching element, a negative one
    # (ne, nin) needs every element to pass — "tags nin [x]" means no tag is x.
    checks: list[tuple[Callable[[Any], bool], bool]] = []
    for op, arg in ops.items():
        if op in _COMPARE:
            checks.append((_compare(op, arg), op == "ne"))
        elif op in ("in", "nin"):
            checks.append((_membership({json.dumps(a, sort_keys=True) for a in arg}, op == "in"), op == "nin"))
        elif op == "glob":
            checks.append((_glob(arg), False))
        else:
            checks.append((_exists(arg), False))

    def match(value: Any) -> bool:
        if isinstance(value, list) and value:
            return all((all if negative else any)(c(v) for v in value) for c, negative in checks)
        return all(c(None if isinstance(value, list) else value) for c, _ in checks)

    return match


def parse_filter(spec: Filter) -> dict[str, dict[str, Any]]:
    """``spec`` checked against the grammar and the size limits: {field: {operator: argument}}."""
    if not isinstance(spec, Mapping):
        raise FilterError(f"a filter must be a dict of field -> condition, got {type(spec).__name__}")
    if len(spec) > MAX_FIELDS:
        raise FilterError(f"the filter names {len(spec)} fields; the limit is {MAX_FIELDS}")
    parsed: dict[str, dict[str, Any]] = {}
    for field, condition in spec.items():
        if not isinstance(field, str) or not field:
            raise FilterError(f"filter field names must be non-empty strings, got {field!r}")
        parsed[field] = _conditions(field, condition)
    try:
        size = len(json.dumps(spec, default=str))
    except (TypeError, ValueError, RecursionError) as exc:
        raise FilterError(f"the filter is not JSON-like: {exc}") from None
    if size > MAX_FILTER_CHARS:
        raise FilterError(f"the filter is {size:,} characters as JSON; the limit is {MAX_FILTER_CHARS:,}")
    return parsed


def compile_filter(spec: Filter) -> list[tuple[str, Callable[[Any], bool]]]:
    return [(field, _predicate(field, ops)) for field, ops in parse_filter(spec).items()]


def describe_fields(fields: Mapping[str, Sequence[str] | set[str] | frozenset[str]], limit: int = 40) -> str:
    """``year (number), tags (array, string), ...`` for messages."""
    if not fields:
        return "(none: no document has metadata)"
    names = sorted(fields)
    text = ", ".join(f"{name} ({', '.join(sorted(fields[name]))})" for name in names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_fields(spec: Filter, fields: Mapping[str, Sequence[str] | set[str] | frozenset[str]]) -> None:
    """FilterError when ``spec`` names a field that no document has (``fields``: field -> the JSON types its values
    take, list elements included) or compares a field with a value of a type it never holds. ``exists: false`` on a
    field no document has is allowed: it asks for the absence, which holds for every document."""
    for field, ops in parse_filter(spec).items():
        known = fields.get(field)
        if known is None:
            if set(ops) == {"exists"} and ops["exists"] is False:
                continue
            raise FilterError(f"filter on {field!r}: no document has this metadata field; the fields are: "
                              f"{describe_fields(fields)}")
        for op, arg in ops.items():
            if op == "exists":
                continue
            if op == "glob":
                wanted = {"string"}  # a glob list is patterns, not an array value
            else:
                wanted = {json_type(a) for a in arg} if op in ("in", "nin") else {json_type(arg)}
            if wanted and not wanted & set(known):
                shown = json.dumps({op: arg}, default=str)
                hint = ""
                if set(known) <= {"string", "array", "null"} and wanted & {"number", "boolean"}:
                    hint = (" (CSV/TSV columns are text unless every value is a number or boolean, or a schema "
                            f"types them: re-index with --schema {field}=int|float|bool, or compare with strings)")
                raise FilterError(f"filter on {field!r}: {shown} compares with {' / '.join(sorted(wanted))} "
                                  f"values, but {field!r} holds only {', '.join(sorted(known))} values"
                                  f"{hint}; it would match nothing")


def filter_key(spec: Filter) -> str:
    return json.dumps(spec, sort_keys=True, default=str)


# columns(fields) -> {field: one value per document, or None when no document of the segment has the field}
Columns = Callable[[list[str]], Mapping[str, "list[Any] | None"]]


def evaluate_filter(spec: Filter, columns: Columns, n_docs: int) -> np.ndarray:
    """Boolean mask (uint8) of the documents that match ``spec``; ``columns`` reads the named fields in one pass."""
    mask = np.ones(n_docs, dtype=bool)
    compiled = compile_filter(spec)
    values = columns([field for field, _ in compiled])
    for field, match in compiled:
        column = values.get(field)
        if column is None:  # absent everywhere: one answer for every document
            if not match(None):
                mask[:] = False
            continue
        mask &= np.fromiter((match(v) for v in column), dtype=bool, count=n_docs)
    return mask.astype(np.uint8)
