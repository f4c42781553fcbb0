"""Metadata filters: the grammar's rough edges are errors naming the field, filters are bounded in size, and a
filter that could only match nothing (a field no document has, a value of the wrong type) is reported."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from retrievekit.core.filters import (
    MAX_FIELDS,
    MAX_FILTER_CHARS,
    MAX_IN_VALUES,
    MAX_VALUE_DEPTH,
    FilterError,
    check_fields,
    compile_filter,
    evaluate_filter,
)

FIELDS = {"year": frozenset({"number"}), "lang": frozenset({"string"}), "tags": frozenset({"array", "string"}),
          "flag": frozenset({"boolean"}), "mixed": frozenset({"string", "number"})}


def message(spec: Any, fields: dict[str, frozenset[str]] | None = None) -> str:
    with pytest.raises(FilterError) as info:
        if fields is None:
            compile_filter(spec)
        else:
            check_fields(spec, fields)
    return str(info.value)


def test_empty_condition_is_an_error_naming_the_field() -> None:
    text = message({"a": {}})
    assert "'a'" in text and "empty" in text and "exists" in text


@pytest.mark.parametrize("arg", ["yes", 1, None, [True]])
def test_exists_takes_true_or_false(arg: Any) -> None:
    text = message({"a": {"exists": arg}})
    assert "'a'" in text and "true or false" in text


def test_null_and_list_values_are_explained() -> None:
    assert "exists" in message({"a": None})  # eq null never matched anything
    assert "exists" in message({"a": {"ne": None}})
    assert '"in"' in message({"a": ["x", "y"]})  # a list to eq: "in" is what was meant
    assert "number or a string" in message({"a": {"gt": [1]}})
    assert "needs a list" in message({"a": {"in": "x"}})
    assert "twice" in message({"a": {"gt": 1, "$gt": 2}})


def test_size_limits() -> None:
    many = {f"f{i}": {"exists": False} for i in range(3000)}  # the D9 probe: 3,000 keys
    assert f"limit is {MAX_FIELDS}" in message(many)
    assert f"limit is {MAX_IN_VALUES}" in message({"a": {"in": list(range(MAX_IN_VALUES + 1))}})
    deep: Any = 1
    for _ in range(MAX_VALUE_DEPTH + 5):
        deep = {"x": deep}
    assert "nested deeper" in message({"a": {"eq": deep}})
    very_deep: Any = 1
    for _ in range(100_000):  # no RecursionError: nesting is measured without recursion
        very_deep = [very_deep]
    assert "nested deeper" in message({"a": {"eq": very_deep}})
    assert "characters" in message({"a": {"in": ["x" * 100] * 1000}}) and MAX_FILTER_CHARS < 100 * 1000
    compile_filter({f"f{i}": {"in": list(range(MAX_IN_VALUES))} for i in range(2)})  # within bounds


def test_unknown_field_names_the_fields_that_exist() -> None:
    text = message({"yaer": {"gte": 2000}}, FIELDS)
    assert "'yaer'" in text and "no document has" in text
    assert "year (number)" in text and "tags (array, string)" in text
    assert "(none" in message({"year": 1}, {})
    check_fields({"reviewed": {"exists": False}}, FIELDS)  # absence asked for: true everywhere, not an error
    assert "no document has" in message({"reviewed": {"exists": True}}, FIELDS)


def test_type_mismatch_is_reported() -> None:
    text = message({"lang": {"gte": 2000}}, FIELDS)
    assert "'lang'" in text and "number" in text and "string" in text and "--schema" in text
    assert "boolean" in message({"flag": 1}, FIELDS)  # 1 is not true in JSON
    assert "string" in message({"year": "1994"}, FIELDS)
    assert "'tags'" in message({"tags": {"in": [1, 2]}}, FIELDS)
    for ok in ({"year": {"gte": 2000}}, {"mixed": 3}, {"mixed": "x"}, {"tags": "ir"}, {"tags": {"nin": ["a", 1]}},
               {"flag": False}, {"lang": {"in": []}}, {"year": {"exists": True}}):
        check_fields(ok, FIELDS)


def test_evaluate_reads_all_fields_at_once_and_skips_absent_ones() -> None:
    calls: list[list[str]] = []
    data = {"year": [1990, 2005, None, 2020]}

    def columns(fields: list[str]) -> dict[str, list[Any] | None]:
        calls.append(fields)
        return {f: data.get(f) for f in fields}

    mask = evaluate_filter({"year": {"gte": 2000}, "other": {"exists": False}}, columns, 4)
    assert mask.tolist() == [0, 1, 0, 1] and calls == [["year", "other"]]
    assert not evaluate_filter({"other": {"exists": True}}, columns, 4).any()
    np.testing.assert_array_equal(evaluate_filter({"year": {"ne": 1990}}, columns, 4), [0, 1, 1, 1])
