"""Path globs (core/globs.py) and the ``glob`` filter operator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.core.filters import FilterError, check_fields, compile_filter, parse_filter
from retrievekit.core.globs import MAX_GLOB_CHARS, MAX_SUBJECT_CHARS, GlobError, compile_glob


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("src/**/*.py", "src/a.py", True),  # ** matches no folder too
    ("src/**/*.py", "src/x/y/a.py", True),
    ("src/**/*.py", "lib/src/a.py", False),  # a pattern with / is anchored
    ("src/**/*.py", "src/a.pyc", False),
    ("*.py", "a.py", True),
    ("*.py", "src/deep/a.py", True),  # no /: any depth
    ("*.py", "src/a.py/readme", True),  # ... and a matching folder selects its contents
    ("src/*.py", "src/a/b.py", False),  # * stays within a folder name
    ("src", "src/a/b.py", True),
    ("src/", "src/a/b.py", True),
    ("src/**", "src/a/b.py", True),
    ("src/**", "srcs/a.py", False),
    ("tests", "pkg/tests/test_x.py", True),
    ("/setup.py", "setup.py", True),
    ("/setup.py", "pkg/setup.py", False),
    ("**/test_*.py", "test_a.py", True),
    ("a?c.go", "abc.go", True),
    ("a?c.go", "a/c.go", False),
    ("[a-c]x.rs", "bx.rs", True),
    ("[!a-c]x.rs", "bx.rs", False),
    ("[^a-c]x.rs", "dx.rs", True),
    ("[]]x", "]x", True),
    ("a[", "a[", True),  # an unclosed bracket is literal
    ("\\*.py", "*.py", True),
    ("\\*.py", "a.py", False),
    ("a**b.py", "aXb.py", True),  # ** inside a name is *
    ("a**b.py", "a/b.py", False),
    ("Src/*.py", "src/a.py", False),  # case matters, as in git
    ("src/**/**/x.py", "src/x.py", True),
])
def test_glob_rules(pattern: str, path: str, expected: bool) -> None:
    assert compile_glob(pattern)(path) is expected


def test_matching_is_bounded() -> None:
    # exponential for a backtracking regex translation; linear-ish here
    hostile = [("*a" * 40 + "*b", "a" * 4000), ("**/a/" * 60 + "b", "/".join(["a"] * 2000)),
               ("?" * 500 + "*z", "y" * 4000)]
    for pattern, subject in hostile:
        match = compile_glob(pattern)
        started = time.perf_counter()
        assert not match(subject)
        assert time.perf_counter() - started < 2.0, pattern
    assert not compile_glob("*")("a" * (MAX_SUBJECT_CHARS + 1))  # an absurd value matches nothing
    with pytest.raises(GlobError, match="limit is 1,024"):
        compile_glob("a" * (MAX_GLOB_CHARS + 1))
    for bad in ("", "/", "//"):
        with pytest.raises(GlobError, match="non-empty path pattern"):
            compile_glob(bad)


def test_the_glob_filter_operator() -> None:
    (field, match), = compile_filter({"path": {"glob": "src/**/*.py"}})
    assert field == "path" and match("src/a/b.py") and not match("docs/a.md") and not match(None) and not match(3)
    assert match(["docs/x.md", "src/y.py"])  # a list value: any element
    (_, either), = compile_filter({"path": {"$glob": ["*.go", "cmd/**"]}})
    assert either("x/y.go") and either("cmd/main.rs") and not either("lib/main.rs")
    for spec, message in [({"path": {"glob": 3}}, "'glob' takes a path pattern"),
                          ({"path": {"glob": []}}, "'glob' takes a path pattern"),
                          ({"path": {"glob": ["ok", 1]}}, "'glob' takes a path pattern"),
                          ({"path": {"glob": ["*"] * 65}}, "65 patterns; the limit is 64"),
                          ({"path": {"glob": "/"}}, "filter on 'path': a glob must be a non-empty")]:
        with pytest.raises(FilterError, match=message):
            parse_filter(spec)
    check_fields({"path": {"glob": ["*.py", "*.go"]}}, {"path": {"string"}})  # patterns, not an array value
    with pytest.raises(FilterError, match="holds only number values"):
        check_fields({"path": {"glob": "*.py"}}, {"path": {"number"}})


def test_glob_filters_a_collection(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "col")
    paths = ["src/app/main.py", "src/util.py", "tests/test_util.py", "docs/util.md", "src/app/main.go"]
    col.add([{"id": p, "text": "util helper", "metadata": {"path": p}} for p in paths])

    def ids(pattern: object) -> set[str]:
        return {d for d, _ in col.search("util helper", k=10, filter={"path": {"glob": pattern}}).hits(0)}

    assert ids("src/**/*.py") == {"src/app/main.py", "src/util.py"}
    assert ids("*.py") == {"src/app/main.py", "src/util.py", "tests/test_util.py"}
    assert ids("tests") == {"tests/test_util.py"}
    assert ids(["docs/**", "*.go"]) == {"docs/util.md", "src/app/main.go"}
