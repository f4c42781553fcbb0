"""``retrievekit components``: every registry kind is listed, with syntax and install status."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterator

import pytest

from retrievekit.cli.components import components, load_registries
from retrievekit.cli.main import main
from retrievekit.core.registry import REGISTRIES

KINDS = ["analyzer", "encoder", "sparse encoder", "vector tier", "ann index", "selector", "compressor", "generator",
         "reranker", "scorer", "fusion method", "score normalization"]


@pytest.fixture
def missing_component() -> Iterator[str]:
    """A generator whose library is not installed (a module that does not exist)."""
    load_registries()
    reg = REGISTRIES["generator"]
    reg.register("imaginary", "retrievekit_no_such_module:Generator", usage="imaginary:MODEL", extra="imaginary",
                 requires=["retrievekit_no_such_module"], description="a test-only backend")
    try:
        yield "imaginary"
    finally:
        reg.unregister("imaginary")


def test_text_lists_every_kind_with_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components"]) == 0
    out = capsys.readouterr().out
    for kind in KINDS + (["chunker"] if "chunker" in REGISTRIES else []):
        assert f"\n{kind} (" in "\n" + out, kind
    for usage in ("lucene-english", "onnx-int8[:MODEL]", "pca:<d>", "hnsw[", "gap[:drop", "openai:MODEL[@BASE_URL]",
                  "cross-encoder:MODEL", "bm25+", "convex (alias: linear)", "splade-tiny"):
        assert usage in out, usage


def test_json_and_missing_extra(missing_component: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(KINDS) <= set(listing)
    generators = {item["name"]: item for item in listing["generator"]}
    fake = generators[missing_component]
    assert fake["installed"] is False and fake["missing"] == ["retrievekit_no_such_module"]
    assert fake["install"] == "pip install 'retrievekit[imaginary]'"
    assert all(item["installed"] for item in listing["fusion method"])  # no optional library needed
    assert main(["components", "--kind", "generator"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"imaginary:MODEL +pip install 'retrievekit\[imaginary\]'  a test-only backend", out)
    assert out.startswith("generator (") and "reranker" not in out


def test_unknown_kind_lists_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["components", "--kind", "nope"]) == 2
    assert "choose from: analyzer" in capsys.readouterr().err


def test_listing_imports_no_optional_library() -> None:
    import subprocess
    import sys

    code = ("import sys; from retrievekit.cli.components import components; components(); "
            "print(sorted(m for m in ('torch', 'faiss', 'httpx', 'sentence_transformers', 'onnxruntime') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_components_function_filters_kinds() -> None:
    assert list(components(["scorer"])) == ["scorer"]


def test_encoder_paths_say_what_the_allocator_gets(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RETRIEVEKIT_MALLOC", "default")
    assert main(["components", "--kind", "encoder", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["encoder paths"]["allocator"] == (
        "malloc left as it is (RETRIEVEKIT_MALLOC=default)")
    monkeypatch.delenv("RETRIEVEKIT_MALLOC")
    assert main(["components", "--kind", "encoder"]) == 0
    out = capsys.readouterr().out
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert "glibc malloc thresholds raised on the first CPU encode (mmap 64 MiB, trim 128 MiB" in out
    else:
        assert "malloc left as it is (not glibc)" in out
