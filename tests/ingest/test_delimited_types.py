"""CSV/TSV metadata columns are typed (inferred, or by a schema) so that numeric and boolean filters match; a column
with one value of another kind stays text as a whole; a schema's bad value is an error with file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from retrievekit import Collection
from retrievekit.core.errors import InputFormatError
from retrievekit.ingest import read_documents
from retrievekit.ingest.delimited import parse_schema, read_delimited

CSV = """id,title,text,year,score,flag,zip,mixed,empty,note
1,A,first,2019,0.5,true,02134,7,,x
2,B,second,2001,3,FALSE,10001,n/a,,
3,C,third,,-1e3,,90210,8,,y
"""


def metadata(path: Path, **options: object) -> list[dict[str, object]]:
    return [d.metadata for d in read_delimited(path, **options)]  # type: ignore[arg-type]


def test_columns_are_inferred(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV, encoding="utf-8")
    first, second, third = metadata(path)
    assert first == {"year": 2019, "score": 0.5, "flag": True, "zip": "02134", "mixed": "7", "empty": "",
                     "note": "x"}
    assert second["flag"] is False and second["score"] == 3 and second["mixed"] == "n/a" and second["note"] == ""
    assert "year" not in third and "flag" not in third and third["score"] == -1000.0  # empty typed cell: absent
    assert metadata(path, infer_types=False)[0]["year"] == "2019"


def test_schema_types_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV, encoding="utf-8")
    first, *_ = metadata(path, schema="zip=int, year=str, mixed=str")
    assert first["zip"] == 2134 and first["year"] == "2019" and first["score"] == 0.5
    assert metadata(path, schema={"flag": "bool"})[1]["flag"] is False
    with pytest.raises(InputFormatError) as info:
        list(read_delimited(path, schema={"mixed": "int"}))
    assert info.value.line == 3 and "'mixed'" in str(info.value) and "'n/a'" in str(info.value)
    assert "mixed=str" in str(info.value)


@pytest.mark.parametrize(("schema", "fragment"), [
    ("year", "COLUMN=TYPE"), ("year=integr", "unknown type 'integr'"), ({"year": 3}, "unknown type"),
])
def test_bad_schema(schema: object, fragment: str) -> None:
    with pytest.raises(InputFormatError, match=fragment):
        parse_schema(schema)  # type: ignore[arg-type]


def test_schema_must_name_metadata_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV, encoding="utf-8")
    with pytest.raises(InputFormatError, match="columns: id, title"):
        list(read_delimited(path, schema="yaer=int"))
    with pytest.raises(InputFormatError, match="only metadata columns"):
        list(read_delimited(path, schema="id=int"))


def test_gzip_tsv_and_progress_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("id\ttext\tn\n" + "".join(f"d{i}\tt\t{i}\n" for i in range(1000)))
    seen: list[int] = []
    docs = list(read_documents(path, on_bytes=seen.append))
    assert [d.metadata["n"] for d in docs] == list(range(1000))
    assert sum(seen) == path.stat().st_size  # the inference pass reports no progress


def test_filters_match_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(CSV, encoding="utf-8")
    col = Collection.create(tmp_path / "c")
    col.ingest(path, progress=False, workers=1)
    assert sorted(col.search("first second third", filter={"year": {"gte": 2000}}).hits(0)) \
        and {d for d, _ in col.search("first second third", filter={"year": {"gte": 2010}}).hits(0)} == {"1"}
    assert {d for d, _ in col.search("first second third", filter={"flag": False}).hits(0)} == {"2"}
    assert {d for d, _ in col.search("first second third", filter={"year": {"exists": False}}).hits(0)} == {"3"}
