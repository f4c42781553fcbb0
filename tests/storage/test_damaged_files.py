"""A damaged segment file (truncated docs.jsonl, missing deletion mask or ids) is named, relative to the collection
(no server path in a message that can reach a client), with how to recover — never a raw traceback — wherever it
is met: opening the collection, fetching, iterating, search hits, a writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from retrievekit import Collection, CollectionError
from retrievekit.storage.writer import CollectionWriter

RECOVER = "Restore the collection folder from a backup, or re-create the collection from its source documents"


def make(tmp_path: Path) -> tuple[Collection, Path]:
    col = Collection.create(tmp_path / "c")
    col.add([{"id": f"d{i}", "text": f"hello world {i}"} for i in range(100)])
    col.delete(["d3"])
    return col, col.snapshot().segments[0].folder


READS: dict[str, Callable[[Path], object]] = {
    "open": lambda path: Collection(path).info(),
    "get": lambda path: Collection(path).get("d99"),
    "iter": lambda path: list(Collection(path).iter_documents()),
    "hits": lambda path: Collection(path).hit_documents(Collection(path).search("hello", k=200)),
    "writer": lambda path: CollectionWriter(path).add([{"id": "d5", "text": "update"}]),
}


def expect_damaged(read: Callable[[Path], object], path: Path, names: str) -> None:
    with pytest.raises(CollectionError) as info:
        read(path)
    message = str(info.value)
    assert f"collection 'c' is damaged: {names}" in message and RECOVER in message, message
    assert str(path.parent) not in message


@pytest.mark.parametrize("read", list(READS))
def test_truncated_docs_jsonl(tmp_path: Path, read: str) -> None:
    col, seg = make(tmp_path)
    data = (seg / "docs.jsonl").read_bytes()
    (seg / "docs.jsonl").write_bytes(data[:-30])
    expect_damaged(READS[read], col.path, f"{seg.name}/docs.jsonl: truncated (")


@pytest.mark.parametrize("read", ["open", "writer"])
def test_missing_deletion_mask(tmp_path: Path, read: str) -> None:
    col, seg = make(tmp_path)
    mask = next(seg.glob("deletes-*.npy"))
    mask.unlink()
    expect_damaged(READS[read], col.path, f"{seg.name}/{mask.name}: missing")


def test_damaged_bytes_inside_docs_jsonl_name_the_document(tmp_path: Path) -> None:
    col, seg = make(tmp_path)
    data = bytearray((seg / "docs.jsonl").read_bytes())
    start = data.index(b'{"id": "d50"')
    data[start:start + 5] = b"xxxxx"  # same length: the offsets still fit, the JSON does not
    (seg / "docs.jsonl").write_bytes(bytes(data))
    expect_damaged(lambda path: Collection(path).get("d50"), col.path, f"{seg.name}/docs.jsonl: document 51 (bytes ")
    assert Collection(col.path).get("d49").text == "hello world 49"  # other documents still read
    with pytest.raises(CollectionError, match=r"docs\.jsonl: line 51 invalid \(JSONDecodeError"):
        list(Collection(col.path).iter_documents())


@pytest.mark.parametrize("file", ["ids.txt", "doc_offsets.npy", "segment.json"])
def test_missing_segment_files(tmp_path: Path, file: str) -> None:
    col, seg = make(tmp_path)
    (seg / file).unlink()
    expect_damaged(READS["open"], col.path, f"{seg.name}/{file}: missing")


def test_ids_that_do_not_match_the_documents(tmp_path: Path) -> None:
    col, seg = make(tmp_path)
    ids = (seg / "ids.txt").read_text().splitlines()
    (seg / "ids.txt").write_text("".join(i + "\n" for i in ids[:-2]))
    expect_damaged(READS["get"], col.path, f"{seg.name}/ids.txt: 98 ids for 100 documents")
