"""Tests of the standard-library demo corpus (retrievekit.ingest.stdlib_corpus)."""

from __future__ import annotations

import ast
import subprocess
import sys
import time

import pytest
from paths import REPO

from retrievekit.core.document import Document
from retrievekit.ingest.stdlib_corpus import _signature, iter_stdlib_documents, stdlib_root

SRC = REPO / "src"


@pytest.fixture(scope="module")
def corpus() -> list[Document]:
    start = time.perf_counter()
    docs = list(iter_stdlib_documents())
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"building the stdlib corpus took {elapsed:.1f} s"
    return docs


@pytest.fixture(scope="module")
def by_id(corpus: list[Document]) -> dict[str, Document]:
    return {doc.id: doc for doc in corpus}


def test_size_in_expected_range(corpus: list[Document]) -> None:
    assert 3000 <= len(corpus) <= 30000


def test_ids_unique(corpus: list[Document]) -> None:
    ids = [doc.id for doc in corpus]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("doc_id", "kind", "module", "path", "title_start", "text_fragment"),
    [
        ("json", "module", "json", "json/__init__.py", "json", "JSON"),
        ("json.dumps", "function", "json", "json/__init__.py", "json.dumps(obj, *, skipkeys=False",
         "Serialize ``obj`` to a JSON formatted ``str``"),
        ("json.encoder.JSONEncoder", "class", "json.encoder", "json/encoder.py", "json.encoder.JSONEncoder",
         "Extensible JSON"),
        ("os.path.join", "function", "os.path", None, "os.path.join(", "Join"),
        ("collections.OrderedDict.move_to_end", "method", "collections", "collections/__init__.py",
         "collections.OrderedDict.move_to_end(key, last=True)", "Move an existing element"),
        ("math.sqrt", "function", "math", None, "math.sqrt(x, /)", "square root"),
        ("builtins.len", "function", "builtins", "<built-in>", "builtins.len(obj, /)", "number of items"),
        ("os.listdir", "function", "os", "<built-in>", "os.listdir(", "directory"),
        ("builtins.dict.get", "method", "builtins", "<built-in>", "builtins.dict.get(key, default=None, /)",
         "default"),
    ],
)
def test_known_entries(by_id: dict[str, Document], doc_id: str, kind: str, module: str, path: str | None,
                       title_start: str, text_fragment: str) -> None:
    doc = by_id[doc_id]
    assert doc.metadata["kind"] == kind
    assert doc.metadata["module"] == module
    if path is not None:
        assert doc.metadata["path"] == path
    assert doc.title.startswith(title_start)
    assert text_fragment in doc.text


def test_os_path_published_under_its_public_name(by_id: dict[str, Document]) -> None:
    import os.path

    assert by_id["os.path.join"].metadata["path"] == os.path.__name__ + ".py"
    assert f"{os.path.__name__}.join" not in by_id


def test_accelerated_c_duplicates_dropped(by_id: dict[str, Document]) -> None:
    assert "heapq.heappush" in by_id and "_heapq.heappush" not in by_id


def test_metadata_and_text_shape(corpus: list[Document]) -> None:
    root = stdlib_root()
    for doc in corpus:
        meta = doc.metadata
        assert set(meta) == {"module", "kind", "path", "lineno"}
        assert meta["kind"] in {"module", "class", "function", "method"}
        assert doc.id == meta["module"] or doc.id.startswith(meta["module"] + ".")
        assert doc.text and doc.text == doc.text.strip() and "\t" not in doc.text.splitlines()[0]
        assert doc.title.startswith(doc.id.split("#")[0])
        if meta["path"].endswith(".py"):
            assert (root / meta["path"]).is_file()
            assert isinstance(meta["lineno"], int) and meta["lineno"] >= 1


def test_no_site_packages_or_tests(corpus: list[Document]) -> None:
    for doc in corpus:
        parts = doc.metadata["path"].split("/")
        assert not {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__",
                    "ensurepip", "turtledemo"} & set(parts), doc.metadata["path"]
    modules = {doc.metadata["module"].split(".")[0] for doc in corpus}
    assert not modules & {"numpy", "pytest", "retrievekit", "scipy", "tqdm", "pip", "setuptools", "test"}


def test_deterministic_and_limit(corpus: list[Document]) -> None:
    assert [d.id for d in iter_stdlib_documents()] == [d.id for d in corpus]
    assert list(iter_stdlib_documents(limit=250)) == corpus[:250]
    assert list(iter_stdlib_documents(limit=0)) == []


def test_does_not_import_python_modules() -> None:
    # In a fresh interpreter: building the corpus must not import the modules it documents.
    code = (
        "import sys; from retrievekit.ingest.stdlib_corpus import iter_stdlib_documents\n"
        "ids = {d.id for d in iter_stdlib_documents()}\n"
        "assert 'antigravity.geohash' in ids and 'this' not in sys.modules and 'antigravity' not in sys.modules\n"
        "bad = [m for m in ('smtplib', 'tkinter', 'asyncio', 'http.server', 'turtle') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, env={"PYTHONPATH": str(SRC)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def _func(source: str) -> ast.FunctionDef:
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


def test_signature_from_ast() -> None:
    assert _signature(_func("def f(a, b=1, *c, d, **e) -> int: pass"), in_class=False) == \
        "(a, b=1, *c, d, **e) -> int"
    assert _signature(_func("def m(self, x, y=2): pass"), in_class=True) == "(x, y=2)"
    assert _signature(_func("def m(self, /, x): pass"), in_class=True) == "(x)"
    assert _signature(_func("@staticmethod\ndef s(x): pass"), in_class=True) == "(x)"
    node = _func("def m(self, x): pass")
    _signature(node, in_class=True)
    assert [a.arg for a in node.args.args] == ["self", "x"], "the parsed tree must not be modified"
