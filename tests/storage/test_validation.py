"""Every document is validated before it is stored (``as_document``), and a batch is checked whole before it
changes anything: lone surrogates, CR/LF/NUL ids, huge integers, NaN and deep metadata are clear errors naming the
item and id; a failed batch leaves an explicit writer as it was (issue 12: D2, D3, D4, D6, rough edges)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from retrievekit import Collection
from retrievekit.core.document import MAX_METADATA_DEPTH, Document
from retrievekit.core.errors import CollectionError, InputFormatError
from retrievekit.storage import writer as writer_module
from retrievekit.storage.writer import as_document


def nested(levels: int) -> dict[str, Any]:
    """Metadata whose field "a" nests ``levels`` objects: nested(2) == {"a": {"a": {"a": 1}}}."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return {"a": value}


@pytest.mark.parametrize("item, expect", [
    ({"id": "\ud800x", "text": "t"}, r"item 3: document id contains a lone surrogate '\\ud800' at character 0"),
    ({"id": "s", "title": "a\udc80"}, r"item 3 \(id 's'\): title contains a lone surrogate '\\udc80' at character 1"),
    (Document(id="s", text="ok \udfff"), r"item 3 \(id 's'\): text contains a lone surrogate"),
    ({"id": "s", "metadata": {"tags": ["ok", "\ud800"]}}, r"metadata field 'tags\[1\]' contains a lone surrogate"),
    ({"id": "s", "metadata": {"k\ud800": 1}}, r"metadata key '\\ud800'|metadata key 'k\\ud800'"),
    ({"id": "a\rb"}, r"document id 'a\\rb' contains a line break \(CR/LF\) or NUL"),
    ({"id": "a\nb"}, r"contains a line break"),
    ({"id": "a\x00b"}, r"contains a line break \(CR/LF\) or NUL"),
    ({"id": 10**5000}, r"item 3: the integer id has over 4,300 digits"),
    ({"id": "n", "metadata": {"x": float("nan")}}, r"metadata field 'x' is nan, which JSON cannot store"),
    ({"id": "n", "metadata": {"x": [float("inf")]}}, r"metadata field 'x\[0\]' is inf"),
    ({"id": "n", "metadata": {"x": 10**5000}}, r"metadata field 'x' is an integer of over 4,300 digits"),
    ({"id": "n", "metadata": {"x": {1, 2}}}, r"metadata field 'x' holds a set"),
    ({"id": "n", "metadata": [1]}, r"metadata must be a JSON object"),
    ({"id": "n", "text": ["x"]}, r"text must be a string, got list"),
    ({"id": "d", "metadata": nested(MAX_METADATA_DEPTH + 1)}, r"item 3 \(id 'd'\): metadata field 'a\.a\.a.*' nests "
                                                          r"lists/objects more than 32 levels deep"),
    ({"id": "d", "metadata": {"l": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}},
     r"more than 32 levels deep"),
])
def test_bad_documents_are_named_by_item_and_id(item: Any, expect: str) -> None:
    with pytest.raises(InputFormatError, match=expect):
        as_document(item, 3)


def test_the_nesting_limit_is_inclusive_and_cycles_stop_at_it() -> None:
    assert as_document({"id": "d", "metadata": nested(MAX_METADATA_DEPTH)}).metadata == nested(32)
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(InputFormatError, match="more than 32 levels deep"):
        as_document({"id": "c", "metadata": cyclic})


def test_error_messages_clip_huge_ids() -> None:
    with pytest.raises(InputFormatError) as info:
        as_document({"id": "x" * 100_000 + "\n"})
    assert len(str(info.value)) < 300


def test_falsy_titles_are_kept_and_numbers_become_text() -> None:
    doc = as_document({"id": 7, "title": 0, "text": 1.5})
    assert (doc.id, doc.title, doc.text) == ("7", "0", "1.5")
    assert as_document({"id": "n", "title": None, "text": None}).title == ""
    with pytest.raises(InputFormatError, match="title must be a string, got bool"):
        as_document({"id": "b", "title": False})


def test_title_zero_is_stored(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "c")
    col.add([{"id": "z", "title": 0, "text": "zero"}])
    assert col.get("z").title == "0"  # type: ignore[union-attr]


@pytest.fixture
def col(tmp_path: Path) -> Collection:
    col = Collection.create(tmp_path / "col")
    col.add([{"id": "keep", "text": "kept text"}, {"id": "other", "text": "other text"}])
    return col


def test_a_bad_batch_changes_nothing_in_an_explicit_writer(col: Collection) -> None:
    """D6: the reported data loss — the batch used to be half-applied (new1 added, keep deleted) and committed."""
    w = col.writer()
    try:
        with pytest.raises(InputFormatError, match=r"item 1 \(id 'keep'\): text contains a lone surrogate"):
            w.add([{"id": "new1"}, Document(id="keep", text="\udc80")])
        w.add([{"id": "new2", "text": "fine"}])  # the writer goes on
        w.commit()
    finally:
        w.close()
    assert "new1" not in col and "new2" in col
    assert col.get("keep").text == "kept text"  # type: ignore[union-attr]
    assert len(col) == 3


def test_a_write_failure_stops_the_writer_until_rollback(col: Collection, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while writing (disk, I/O) may leave the open segment half-written: nothing of it is committed."""
    real_add = writer_module.SegmentWriter.add

    def failing_add(self: Any, doc: Document) -> int:
        if doc.id == "boom":
            raise OSError(5, "Input/output error")
        return real_add(self, doc)

    monkeypatch.setattr(writer_module.SegmentWriter, "add", failing_add)
    w = col.writer()
    try:
        w.add([{"id": "early", "text": "before the failure"}])
        with pytest.raises(OSError):
            w.add([{"id": "keep", "text": "replacement"}, {"id": "boom", "text": "x"}])
        for step in (w.commit, lambda: w.add([{"id": "x"}]), lambda: w.delete(["other"])):
            with pytest.raises(CollectionError, match=r"an earlier add\(\) failed while writing .*call rollback\(\)"):
                step()
        w.rollback()
        w.add([{"id": "after", "text": "after rollback"}])
        w.commit()
    finally:
        w.close()
    assert col.get("keep").text == "kept text"  # type: ignore[union-attr]
    assert "early" not in col and "boom" not in col and "after" in col


def passage_col(tmp_path: Path) -> Collection:
    col = Collection.create(tmp_path / "pcol", passages="sentences:8")
    col.add([{"id": "a", "title": "A", "text": "First sentence about cats. Second sentence about dogs."}])
    return col


def test_a_failing_chunker_changes_nothing_in_a_passage_collection(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    col = passage_col(tmp_path)
    before = sorted(d.id for d in col.iter_documents())
    w = col.writer()
    chunker = w._chunker
    assert chunker is not None
    real_chunk = chunker.chunk

    def chunk(doc_id: str, text: str, metadata: Any = None) -> Any:
        if doc_id == "bad":
            raise ValueError("cannot chunk")
        return real_chunk(doc_id, text, metadata)

    monkeypatch.setattr(chunker, "chunk", chunk)
    try:
        with pytest.raises(ValueError, match="cannot chunk"):
            w.add([{"id": "a", "text": "A new version."}, {"id": "bad", "text": "x"}])
        w.commit()  # nothing was changed, so nothing is committed
    finally:
        w.close()
    assert sorted(d.id for d in col.iter_documents()) == before
    assert "cats" in col.get("a#0").text  # type: ignore[union-attr]


def test_empty_documents_are_kept_as_one_empty_passage(tmp_path: Path) -> None:
    """Decision: an empty (or blank) document of a passage collection is stored as one empty passage ``ID#0``
    spanning its whole text, so it is counted, fetched and deleted like any document (its title still matches)."""
    col = passage_col(tmp_path)
    col.add([{"id": "empty"}, {"id": "blank", "title": "Zebrafish notes", "text": "  \n "}])
    empty, blank = col.get("empty#0"), col.get("blank#0")
    assert empty is not None and (empty.text, empty.metadata["passage_of"]) == ("", "empty")
    assert (empty.metadata["passage_start"], empty.metadata["passage_end"]) == (0, 0)
    assert blank is not None and blank.text == "  \n " and blank.metadata["passage_end"] == 4
    assert [h[0] for h in col.search("zebrafish").hits(0)] == ["blank#0"]
    # A later version with text replaces the empty passage; deleting by document id removes it.
    col.add([{"id": "empty", "text": "Now it has words."}])
    assert col.get("empty#0").text == "Now it has words."  # type: ignore[union-attr]
    with col.writer() as w:
        assert w.delete(["blank"]) == 1
    assert "blank#0" not in col


def test_empty_documents_survive_a_parallel_passage_ingest(tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text('{"_id": "e"}\n{"_id": "f", "text": "Full text here."}\n')
    col = Collection.create(tmp_path / "p", passages="sentences")
    report = col.ingest(source, progress=False, workers=2, batch_size=1)
    assert report["documents"] == 2 and "e#0" in col and "f#0" in col
