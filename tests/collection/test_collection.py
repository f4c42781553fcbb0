"""Collections: add / update / delete / commit semantics, persistence, locking, filters, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from retrievekit import Collection, CollectionError, CollectionLockedError, Document, InputFormatError

DOCS = [
    {"id": "d1", "title": "BM25 ranking", "text": "Okapi BM25 is a ranking function used by search engines.",
     "metadata": {"year": 1994, "tags": ["ir", "ranking"], "lang": "en"}},
    {"id": "d2", "title": "Dense retrieval", "text": "Dense retrieval encodes queries and passages as vectors.",
     "metadata": {"year": 2020, "tags": ["ir", "neural"], "lang": "en"}},
    {"id": "d3", "title": "Stemming", "text": "Porter's stemmer strips suffixes: running becomes run.",
     "metadata": {"year": 1980, "tags": ["nlp"], "lang": "en"}},
    {"id": "d4", "title": "Recherche", "text": "La recherche d'information classe les documents.",
     "metadata": {"year": 2001, "lang": "fr"}},
]


@pytest.fixture()
def col(tmp_path: Path) -> Collection:
    c = Collection.create(tmp_path / "c")
    c.add(DOCS)
    return c


def ids(results, i=0):  # type: ignore[no-untyped-def]
    return [d for d, _ in results.hits(i)]


def test_create_add_search_get(col: Collection) -> None:
    assert len(col) == 4
    res = col.search(["ranking function", "vectors"], k=3)
    assert res.ids.shape == (2, 3) and res.scores.dtype == np.float32
    assert ids(res, 0)[0] == "d1" and ids(res, 1) == ["d2"]
    assert res.ids[1, 1] is None and res.scores[1, 1] == -np.inf
    doc = col.get("d3")
    assert doc is not None and doc.title == "Stemming" and doc.metadata["tags"] == ["nlp"]
    assert col.get("nope") is None and "d1" in col and "nope" not in col
    # stemming: "runs" matches "running"
    assert ids(col.search("runs"))[0] == "d3"


def test_reopen_persists(col: Collection) -> None:
    again = Collection(col.path)
    assert len(again) == 4
    assert ids(again.search("dense vectors")) == ids(col.search("dense vectors"))


def test_update_and_delete(col: Collection) -> None:
    col.add([{"id": "d1", "title": "Replaced", "text": "now about vectors too"}])
    assert len(col) == 4
    assert col.get("d1").title == "Replaced"  # type: ignore[union-attr]
    assert "ranking" not in " ".join(col.get("d1").text for _ in [0])  # type: ignore[union-attr]
    assert ids(col.search("okapi")) == []
    assert col.delete(["d2", "missing"]) == 1
    assert len(col) == 3 and col.get("d2") is None
    assert ids(col.search("vectors")) == ["d1"]


def test_uncommitted_changes_invisible_and_rollback(col: Collection) -> None:
    w = col.writer()
    w.add([{"id": "new", "text": "invisible until commit"}])
    w.delete(["d1"])
    assert ids(col.search("invisible")) == [] and col.get("d1") is not None
    w.commit()
    assert ids(col.search("invisible")) == ["new"] and col.get("d1") is None
    w.add([{"id": "other", "text": "rolled back"}])
    w.rollback()
    w.close()
    assert ids(col.search("rolled")) == []
    with pytest.raises(RuntimeError), col.writer() as w2:
        w2.add([{"id": "x", "text": "exception inside the block"}])
        raise RuntimeError("boom")
    assert "x" not in col


def test_readd_same_id_within_writer_keeps_last(col: Collection) -> None:
    with col.writer() as w:
        w.add([{"id": "z", "text": "first version"}])
        w.add([{"id": "z", "text": "second version"}])
    assert col.get("z").text == "second version"  # type: ignore[union-attr]
    assert ids(col.search("first")) == [] and ids(col.search("second")) == ["z"]


def test_duplicate_id_in_batch_rejected(col: Collection) -> None:
    with pytest.raises(InputFormatError, match=r"duplicate document id 'a'.*items 0 and 2"):
        col.add([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}])
    assert len(col) == 4 and "b" not in col


@pytest.mark.parametrize("bad", [{"text": "no id"}, {"id": "", "text": "empty"}, {"id": "a\nb", "text": "newline"},
                                 {"id": "ok", "text": ["x"]}, {"id": "m", "metadata": {"when": object()}},
                                 {"id": "nan", "metadata": {"x": float("nan")}}])
def test_bad_documents_rejected(col: Collection, bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputFormatError):
        col.add([{"id": "fine", "text": "fine"}, bad])
    assert "fine" not in col and len(col) == 4


def test_empty_document_is_stored_and_matches_nothing(col: Collection) -> None:
    col.add([Document(id="empty")])
    assert col.get("empty") == Document(id="empty")
    assert "empty" not in ids(col.search("bm25 dense stemming", k=10))


def test_second_writer_gets_clear_error(col: Collection) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from retrievekit import Collection
        w = Collection({str(col.path)!r}).writer()
        print("locked", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(CollectionLockedError, match=f"pid {proc.pid}"):
            col.writer()
        # readers are not blocked by the writer
        assert ids(col.search("ranking"))[0] == "d1"
    finally:
        proc.kill()
        proc.wait()
    col.writer(lock_timeout=5).close()  # the lock died with the process


def test_metadata_filters(col: Collection) -> None:
    assert set(ids(col.search("the", k=10, filter={"lang": "fr"}))) <= {"d4"}
    q = "retrieval ranking stemmer recherche"
    assert set(ids(col.search(q, filter={"year": {"gte": 1990, "lt": 2010}}))) == {"d1", "d4"}
    assert set(ids(col.search(q, filter={"tags": {"in": ["neural", "nlp"]}}))) == {"d2", "d3"}
    assert set(ids(col.search(q, filter={"tags": {"exists": False}}))) == {"d4"}
    assert set(ids(col.search(q, filter={"lang": {"ne": "en"}}))) == {"d4"}
    assert set(ids(col.search(q, filter={"year": {"$lte": 1980}}))) == {"d3"}
    assert set(ids(col.search(q, filter={"tags": {"nin": ["ir"]}}))) == {"d3", "d4"}  # no tag is "ir"
    assert set(ids(col.search(q, filter={"tags": "ir", "year": {"gt": 2000}}))) == {"d2"}
    with pytest.raises(ValueError, match="unknown operator"):
        col.search(q, filter={"year": {"between": [1, 2]}})


def test_segments_merge_and_optimize_keep_results(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "m")
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(50)]
    docs = [{"id": f"doc{i}", "text": " ".join(rng.choice(words, 12))} for i in range(60)]
    whole = Collection.create(tmp_path / "whole")
    whole.add(docs)
    for start in range(0, 60, 5):  # 12 commits -> merges kick in above 10 segments
        with col.writer(max_segments=4) as w:
            w.add(docs[start : start + 5])
    assert col.info()["segments"] <= 4
    queries = ["w1 w2", "w10 w20 w30", "w49"]
    a, b = col.search(queries, k=60), whole.search(queries, k=60)
    for i in range(len(queries)):  # same statistics -> same scores (order of ties may differ)
        assert dict(a.hits(i)) == pytest.approx(dict(b.hits(i)), rel=1e-6)
    col.delete(["doc3", "doc7"])
    col.optimize()
    info = col.info()
    assert info["segments"] == 1 and info["documents"] == 58 and info["deleted_documents"] == 0
    assert "doc3" not in col and col.get("doc8") is not None


def test_ingest_is_all_or_nothing(tmp_path: Path, col: Collection) -> None:
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"_id": f"n{i}", "text": f"new document {i}"}) for i in range(2500)]
    lines[2200] = '{"_id": "broken", "text": '
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFormatError, match=r"in\.jsonl:2201"):
        col.ingest(src, progress=False)
    assert len(col) == 4 and "n0" not in col
    lines[2200] = json.dumps({"_id": "fixed", "text": "ok"})
    src.write_text("\n".join(lines) + "\n")
    report = col.ingest(src, progress=False)
    assert report["documents"] == 2500 and len(col) == 2504


def test_invalid_utf8_named_with_line(tmp_path: Path, col: Collection) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(InputFormatError, match=r"bad\.jsonl:2"):
        col.ingest(src, progress=False)
    assert "a" not in col


def test_missing_source_and_not_a_collection(tmp_path: Path, col: Collection) -> None:
    with pytest.raises(InputFormatError, match="nope.jsonl"):
        col.ingest(tmp_path / "nope.jsonl", progress=False)
    with pytest.raises(CollectionError, match="does not exist"):
        Collection(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file.txt").write_text("x")
    with pytest.raises(CollectionError, match="not an empty folder"):
        Collection.create(tmp_path / "plain")
    with pytest.raises(CollectionError, match="already exists"):
        Collection.create(col.path)


def test_huge_document(tmp_path: Path) -> None:
    col = Collection.create(tmp_path / "h")
    words = ("alpha beta gamma delta epsilon " * 1_800_000)[: 50 * 1024 * 1024]  # 50 MB
    col.add([{"id": "huge", "text": words + " needle"}, {"id": "small", "text": "gamma needle"}])
    assert len(col.get("huge").text) > 50_000_000  # type: ignore[union-attr]
    assert set(ids(col.search("needle"))) == {"huge", "small"}
    assert ids(col.search("needle"))[0] == "small"  # length normalisation works at that size


def test_batch_threads_equal_sequential(col: Collection) -> None:
    queries = ["ranking", "vectors dense", "stemmer", "recherche", "bm25 okapi"] * 4
    a = col.search(queries, k=3)
    b = col.search(queries, k=3, threads=3)
    assert (a.ids == b.ids).all() and np.array_equal(a.scores, b.scores)


def test_reader_follows_other_process_commits(col: Collection) -> None:
    reader = Collection(col.path)
    assert len(reader) == 4
    subprocess.run([sys.executable, "-c", f"from retrievekit import Collection; Collection({str(col.path)!r})"
                    ".add([{'id': 'ext', 'text': 'added elsewhere'}])"], check=True)
    assert ids(reader.search("elsewhere")) == ["ext"]


def test_readers_see_only_whole_commits_while_a_writer_commits(tmp_path: Path) -> None:
    """A writer process commits batches of 50 documents (with merges); meanwhile this process searches
    continuously. Every search must see a whole number of batches: never part of a commit, never an error."""
    path = tmp_path / "live"
    col = Collection.create(path)
    script = textwrap.dedent(f"""
        from retrievekit import Collection
        col = Collection({str(path)!r})
        for b in range(40):
            with col.writer(max_segments=3) as w:
                w.add([{{"id": f"{{b}}-{{i}}", "text": f"common word batch{{b}}"}} for i in range(50)])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    seen = set()
    try:
        while proc.poll() is None:
            n = len(col.search("common", k=5000).hits(0))
            assert n % 50 == 0, f"search saw {n} documents: part of a commit"
            seen.add(n)
    finally:
        proc.wait()
    assert proc.returncode == 0
    assert len(col.search("common", k=5000).hits(0)) == 2000
    assert len(seen) > 3  # the reader really ran while commits happened
