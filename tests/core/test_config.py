from __future__ import annotations

import json

import pytest
from paths import FIXTURES

from retrievekit.core.config import CollectionConfig, DenseIndexConfig
from retrievekit.core.errors import CollectionError


@pytest.mark.parametrize("name", ["full", "passages"])
def test_fixture_configs_round_trip_exactly(name: str) -> None:
    """Index file names hash the JSON config, so reading and writing it back must not change a byte of meaning."""
    config = json.loads((FIXTURES / "collection_v1" / name / "manifest.json").read_text())["config"]
    typed = CollectionConfig.from_json(config)
    assert typed.to_json() == config
    assert typed.fields == ("title", "text")
    if name == "full":
        dense = typed.dense["default"]
        assert dense.encoder["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert dense.tier == "binary" and typed.sparse["default"].quantization == 100
        assert typed.passages is None
    else:
        assert typed.passages is not None and typed.passages.chunker == "sentences:48" and not typed.dense


def test_unknown_keys_are_kept() -> None:
    config = {"fields": ["text"], "bm25": {"analyzer": "whitespace"}, "future": {"x": 1},
              "dense": {"d": {"encoder": {"model": "m"}, "chunking": None, "fields": ["text"], "later": True}}}
    assert CollectionConfig.from_json(config).to_json() == config
    assert DenseIndexConfig.from_json(config["dense"]["d"]).tier == "float32"


@pytest.mark.parametrize(("config", "message"), [
    ({"bm25": {"analyzer": "x"}}, "missing 'fields'"),
    ({"fields": [], "bm25": {"analyzer": "x"}}, "non-empty list"),
    ({"fields": ["text"]}, "missing 'bm25'"),
    ({"fields": ["text"], "bm25": {"analyzer": "x"}, "dense": {"d": {"fields": ["text"]}}},
     "dense index 'd': missing 'encoder'"),
    ({"fields": ["text"], "bm25": {"analyzer": "x"},
      "sparse": {"s": {"encoder": {}, "fields": ["t"], "quantization": "9"}}}, "'quantization' must be int"),
    ([], "must be an object"),
])
def test_damaged_configs_name_the_problem(config: object, message: str) -> None:
    with pytest.raises(CollectionError, match=message):
        CollectionConfig.from_json(config)  # type: ignore[arg-type]
