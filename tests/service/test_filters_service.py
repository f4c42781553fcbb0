"""Filters through the service layer (CLI, HTTP, MCP): a field no document has and a value of the wrong type are
bad_filter errors naming the field and the fields that exist; filters are bounded, and so is the metadata column
cache of a segment (D9: thousands of keys used to cost 90 s of CPU and leave the server 270 MB larger)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.core.filters import FilterError
from retrievekit.service import Asker, AskRequest, SearchRequest, ServiceError, search
from retrievekit.storage import segment

FIXTURE_V1 = Path(__file__).resolve().parents[1] / "data" / "collection_v1" / "full"


@pytest.fixture
def col(tmp_path: Path) -> Collection:
    c = Collection.create(tmp_path / "col")
    c.add([{"id": f"d{i}", "text": f"shared words {i}",
            "metadata": {"year": 1990 + i, "lang": "en" if i % 2 else "fr", **({"tags": ["a"]} if i < 3 else {})}}
           for i in range(30)])
    c.add([{"id": "late", "text": "shared words late", "metadata": {"extra": True}}])  # a second segment
    return c


def bad_filter(col: Collection, flt: object) -> str:
    with pytest.raises(ServiceError) as info:
        search(col, SearchRequest("shared", filter=flt))  # type: ignore[arg-type]
    assert info.value.code == "bad_filter" and info.value.param == "filter"
    return info.value.message


def test_unknown_field_is_an_error_naming_the_fields(col: Collection) -> None:
    text = bad_filter(col, {"yaer": {"gte": 2000}})
    assert "'yaer'" in text and "year (number)" in text and "lang (string)" in text and "extra (boolean)" in text
    assert len(search(col, SearchRequest("shared", filter={"year": {"gte": 2010}})).hits) == 10
    assert len(search(col, SearchRequest("shared", k=50, filter={"reviewed": {"exists": False}})).hits) == 31


def test_type_mismatch_is_an_error(col: Collection) -> None:
    text = bad_filter(col, {"year": {"gte": "2000"}})
    assert "'year'" in text and "string" in text and "number" in text
    assert "boolean" in bad_filter(col, {"extra": 1})
    with pytest.raises(FilterError, match="'lang'"):  # the Python API says the same
        col.search("shared", filter={"lang": 1})


def test_rough_edges(col: Collection) -> None:
    assert "'year'" in bad_filter(col, {"year": {}})
    assert "true or false" in bad_filter(col, {"year": {"exists": "yes"}})


def test_ask_checks_fields_before_any_work(col: Collection) -> None:
    with pytest.raises(ServiceError) as info:
        Asker().rag_options(col, AskRequest("q", filter={"yaer": 1}))
    assert info.value.code == "bad_filter" and "year (number)" in info.value.message


def test_thousands_of_keys_are_refused_without_reading_metadata(col: Collection,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[list[str]] = []
    original = segment.SegmentReader.metadata_columns
    monkeypatch.setattr(segment.SegmentReader, "metadata_columns",
                        lambda self, fields: scans.append(fields) or original(self, fields))
    text = bad_filter(col, {f"f{i}": {"exists": False} for i in range(3000)})
    assert "3000 fields" in text and "limit is 64" in text
    assert scans == []


def test_column_cache_is_bounded(col: Collection, monkeypatch: pytest.MonkeyPatch) -> None:
    with col.writer() as w:
        w.add([{"id": f"w{i}", "text": "shared", "metadata": {f"f{j}": j for j in range(40)}} for i in range(5)])
    monkeypatch.setattr(segment, "MAX_CACHED_COLUMNS", 4)
    for j in range(40):
        assert len(col.search("shared", k=50, filter={f"f{j}": j}).hits(0)) == 5
    readers = col.snapshot().segments
    assert all(len(r._columns) <= 4 for r in readers)
    # a segment without the field answers from its field types, with no column read or cached
    assert readers[0].metadata_columns(["f3"]) == {"f3": None} and "f3" not in readers[0]._columns
    monkeypatch.setattr(segment, "COLUMN_CACHE_BYTES", 200)  # about one column of 5 small ints
    for j in range(10):
        col.search("shared", filter={f"f{j}": j})
    assert sum(size for _, size in readers[-1]._columns.values()) <= 200


def test_collection_of_the_previous_release(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE_V1, tmp_path / "v1")
    col = Collection(tmp_path / "v1")  # segment.json holds no field list: the types come from metadata.jsonl
    assert col.snapshot().metadata_fields() == {"n": frozenset({"number"}), "source": frozenset({"string"})}
    with pytest.raises(FilterError, match="'n'"):
        col.search("cell", mode="bm25", filter={"n": {"gte": "30"}})
    assert search(col, SearchRequest("cell", mode="bm25", filter={"n": {"gte": 30}})).hits


def test_http_answers_400_with_the_message(col: Collection) -> None:
    from fastapi.testclient import TestClient

    from retrievekit.serve.app import create_app

    client = TestClient(create_app(col.path))
    r = client.post("/api/search", json={"query": "shared", "filter": {"yaer": {"gte": 2000}}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_filter"
    assert "year (number)" in r.json()["error"]["message"]
    r = client.post("/api/search", json={"query": "shared", "filter": {f"f{i}": {"exists": False}
                                                                        for i in range(3000)}})
    assert r.status_code == 400 and "limit is 64" in r.json()["error"]["message"]
