"""Dense indexes inside collections: encoding at commit, updates/deletes, merges, resume, mismatch, filters, modes."""

from __future__ import annotations

import numpy as np
import pytest
from toy_encoder import ToyEncoder

from retrievekit import Collection, CollectionError
from retrievekit.encoders import EncoderMismatchError
from retrievekit.index.dense.segment import vectors_file
from retrievekit.retrieval.dense.retriever import DenseRetriever

DOCS = [
    {"id": "d1", "title": "Cats", "text": "cats purr and sleep all day", "metadata": {"kind": "animal"}},
    {"id": "d2", "title": "Dogs", "text": "dogs bark at the mailman", "metadata": {"kind": "animal"}},
    {"id": "d3", "title": "Python", "text": "python is a programming language", "metadata": {"kind": "code"}},
    {"id": "d4", "title": "Rust", "text": "rust is a systems programming language", "metadata": {"kind": "code"}},
]


@pytest.fixture
def col(tmp_path):
    c = Collection.create(tmp_path / "c", dense="toy:bow")
    c.add(DOCS)
    return c


def top_ids(results, i=0):
    return [d for d, _ in results.hits(i)]


def test_dense_search_finds_by_meaning_of_words(col):
    res = col.search(["programming language rust", "purring cats"], k=2, mode="dense")
    assert top_ids(res, 0)[0] == "d4"
    assert top_ids(res, 1)[0] == "d1"
    assert res.scores[0, 0] >= res.scores[0, 1]


def test_every_committed_segment_has_vectors(col):
    config = col.config["dense"]["default"]
    for seg in col.snapshot().segments:
        vectors = np.load(seg.folder / vectors_file(config))
        assert vectors.shape == (seg.n_docs, 64)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_updates_and_deletes_are_seen_by_dense_search(col):
    col.add([{"id": "d1", "text": "quantum chromodynamics of gluons"}])
    col.delete(["d4"])
    res = col.search(["gluons quantum"], k=4, mode="dense")
    assert top_ids(res)[0] == "d1"
    res = col.search(["rust systems programming"], k=10, mode="dense")
    assert "d4" not in top_ids(res)
    assert len(top_ids(res)) == 3


def test_merge_copies_vectors_without_reencoding(col):
    col.add([{"id": "d5", "text": "parrots talk"}])
    col.delete(["d2"])
    before = ToyEncoder.calls
    col.optimize()
    assert ToyEncoder.calls == before
    assert len(col.snapshot().segments) == 1
    res = col.search(["talking parrots", "mailman dogs"], k=3, mode="dense")
    assert top_ids(res, 0)[0] == "d5"
    assert "d2" not in top_ids(res, 1)


def test_filters_apply_to_dense_search(col):
    res = col.search(["programming language"], k=4, mode="dense", filter={"kind": "animal"})
    assert set(top_ids(res)) == {"d1", "d2"}


def test_query_encoder_must_match_index(col):
    with pytest.raises(EncoderMismatchError, match="query_prompt"):
        DenseRetriever(col, encoder=ToyEncoder("bow", query_prompt="query: "))
    with pytest.raises(EncoderMismatchError, match="model"):
        DenseRetriever(col, encoder=ToyEncoder("other"))
    # Another backend computing the same function is accepted.
    DenseRetriever(col, encoder=ToyEncoder("bow"))


def test_no_dense_index_is_a_clear_error(tmp_path):
    c = Collection.create(tmp_path / "plain")
    c.add(DOCS)
    with pytest.raises(CollectionError, match="no dense index"):
        c.search(["x"], mode="dense")


def test_add_dense_index_resumes_after_a_crash(tmp_path):
    c = Collection.create(tmp_path / "c")
    docs = [{"id": f"x{i}", "text": f"document number {i} about topic {i % 7}"} for i in range(1200)]
    c.add(docs)
    ToyEncoder.calls = 0
    with pytest.raises(RuntimeError, match="simulated crash"):
        c.add_dense_index(ToyEncoder("bow", fail_after=700), progress=False)
    assert "dense" not in c.config  # nothing committed
    done = ToyEncoder.calls
    assert 0 < done <= 700
    ToyEncoder.calls = 0
    c.add_dense_index(ToyEncoder("bow"), progress=False)
    flushed = done // 512 * 512  # the cache writes a shard every 512 texts
    assert flushed > 0
    assert ToyEncoder.calls == 1200 - flushed  # the flushed shards were not encoded again
    res = c.search(["document number 17 about topic 3"], k=1, mode="dense")
    assert top_ids(res) == ["x17"]


def test_chunking_represents_the_end_of_long_documents(tmp_path):
    filler = " ".join(f"filler{i}" for i in range(200))
    docs = [{"id": "long", "text": filler + " zebra giraffe savanna" * 12},
            {"id": "short", "text": "a note about a zebra"}]
    plain = Collection.create(tmp_path / "plain", dense="toy:bow")
    plain.add(docs)
    query = ["giraffe savanna zebra"]
    # The toy model reads 64 words: without chunking the long document's end is cut off.
    assert top_ids(plain.search(query, k=2, mode="dense"))[0] == "short"
    for pool in ("mean",):
        chunked = Collection.create(tmp_path / pool, dense="toy:bow", chunking=f"48:8:{pool}")
        chunked.add(docs)
        assert top_ids(chunked.search(query, k=2, mode="dense"))[0] == "long", pool
    first = Collection.create(tmp_path / "first", dense="toy:bow", chunking="48:8:first")
    first.add(docs)
    assert top_ids(first.search(query, k=2, mode="dense"))[0] == "short"


def test_hybrid_and_pipeline_operators(col):
    res = col.search(["rust programming"], k=3, mode="hybrid")
    assert top_ids(res)[0] == "d4"
    bm25, dense = col.retriever("bm25"), col.retriever("dense")
    for pipeline in (bm25 | dense, bm25 + dense, (bm25 | dense) % 2):
        out = pipeline.search(["rust programming", "dogs"], k=3)
        assert top_ids(out, 0)[0] == "d4"
        assert top_ids(out, 1)[0] == "d2"
    assert len(top_ids(((bm25 | dense) % 2).search(["programming"], k=3))) == 2


def test_create_exist_ok_checks_the_dense_settings(col, tmp_path):
    again = Collection.create(col.path, dense="toy:bow", exist_ok=True)
    assert len(again) == 4
    with pytest.raises(CollectionError, match="different settings"):
        Collection.create(col.path, dense="toy:other", exist_ok=True)


def test_drop_dense_index_removes_its_files(col):
    config = col.config["dense"]["default"]
    col.drop_dense_index()
    assert "default" not in (col.config.get("dense") or {})
    with col.writer():
        pass
    assert not any((seg.folder / vectors_file(config)).exists() for seg in col.snapshot().segments)


@pytest.mark.parametrize("pool", ["mean", "max", "first"])
def test_window_pooling_arithmetic(pool):
    from retrievekit.index.dense.embedding import Chunking, embed_documents, split_windows

    encoder = ToyEncoder("bow", normalize=False)
    text = " ".join(f"w{i}" for i in range(100))
    chunking = Chunking(max_tokens=40, overlap=10, pool=pool)
    windows = split_windows(encoder, text, chunking)
    assert [len(w.split()) for w in windows] == [40, 40, 40]
    assert windows[-1].split()[-1] == "w99"
    assert windows[1].split()[0] == "w30"  # 10 tokens shared with the previous window
    parts = encoder.encode(windows)
    expected = {"mean": parts.sum(0), "max": parts.max(0), "first": parts[0]}[pool]
    got = embed_documents(encoder, [text, "short one"], chunking=chunking)
    assert np.allclose(got[0], expected, atol=1e-5)
    assert np.allclose(got[1], encoder.encode(["short one"])[0], atol=1e-5)


def test_rocchio_feedback_moves_the_query_toward_its_first_hits(col):
    plain = col.retriever("dense")
    same = col.retriever("dense", prf={"fb_docs": 2, "beta": 0.0})
    moved = col.retriever("dense", prf={"fb_docs": 1, "beta": 4.0})
    q = ["programming"]
    assert top_ids(same.search(q, k=4)) == top_ids(plain.search(q, k=4))
    first = top_ids(plain.search(q, k=1))[0]
    res = moved.search(q, k=4)
    assert top_ids(res)[0] == first
    # With a heavy feedback weight the query is almost the first hit's vector: its score approaches 1.
    assert res.scores[0, 0] > plain.search(q, k=1).scores[0, 0]


def test_evaluate_retriever_accepts_pipelines(col):
    from retrievekit.evaluation import BeirDataset, evaluate_retriever

    ds = BeirDataset(path=col.path, split="test", queries={"q1": "rust programming", "q2": "cats purr"},
                     qrels={"q1": {"d4": 1}, "q2": {"d1": 1}}, corpus_path=col.path)
    bm25, dense = col.retriever("bm25"), col.retriever("dense")
    for system in (bm25, dense, bm25 | dense, (bm25 + dense) % 3):
        result = evaluate_retriever(system, ds, ["ndcg@10", "recall@100"])
        assert result.mean["ndcg@10"] == pytest.approx(1.0)


def test_ingest_reports_the_seconds_spent_encoding(tmp_path, monkeypatch):
    """The report splits encoding from the rest of an ingest: at least the encoder's own (fixed) delay, never more
    than the whole ingest; a collection without a model index spends none."""
    import json
    import time

    source = tmp_path / "docs.jsonl"
    # texts of this test only: the embedding cache would hand back vectors of texts other tests encoded
    docs = [{"id": f"t{i}", "text": f"{tmp_path.name} timing document {i}"} for i in range(3)]
    source.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    encode = ToyEncoder._encode_batch

    def slow(self, texts):
        time.sleep(0.3)
        return encode(self, texts)

    monkeypatch.setattr(ToyEncoder, "_encode_batch", slow)
    dense = Collection.create(tmp_path / "dense", dense="toy:bow").ingest(source, progress=False, workers=1)
    assert 0.3 <= dense["encode_seconds"] <= dense["seconds"]
    plain = Collection.create(tmp_path / "plain").ingest(source, progress=False, workers=1)
    assert plain["encode_seconds"] == 0.0 and plain["documents"] == len(docs)
