"""Scoring functions: Lucene scores equal Pyserini's per document; every variant equals its textbook formula
computed independently; the numpy fallback equals the compiled kernel; RM3 expansion."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from paths import FIXTURES

from retrievekit import Collection
from retrievekit.evaluation import load_beir
from retrievekit.retrieval.bm25.kernel import HAVE_KERNEL
from retrievekit.retrieval.bm25.lucene_norms import quantized_lengths
from retrievekit.retrieval.bm25.retriever import BM25Retriever
from retrievekit.retrieval.bm25.rm3 import RM3

FIXTURE = FIXTURES / "pyserini_scores.json"


@pytest.fixture(scope="module")
def collections(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Collection]:
    out = {}
    for name in ("scifact", "cosqa"):
        col = Collection.create(tmp_path_factory.mktemp(name) / "c")
        col.ingest(load_beir(data_dir / name).corpus_path, progress=False)
        out[name] = col
    return out


@pytest.mark.parametrize("name", ["scifact", "cosqa"])
def test_lucene_scores_equal_pyserini_per_document(name: str, collections: dict[str, Collection]) -> None:
    rows = json.loads(FIXTURE.read_text())[name]
    col = collections[name]
    res = col.search([r["query"] for r in rows], k=50)
    checked = 0
    for i, row in enumerate(rows):
        ours = dict(res.hits(i))
        for doc_id, score in row["hits"]:
            assert ours[doc_id] == pytest.approx(score, abs=1.5e-4), (row["qid"], doc_id)
            checked += 1
    assert checked > 150


def brute_force(col: Collection, query: str, variant: str, **p: float) -> dict[str, float]:
    """Textbook formulas over term counts recomputed from the stored documents (no index involved)."""
    analyzer = col.analyzer
    docs = {d.id: Counter(analyzer.analyze(d.title + " " + d.text if d.title else d.text))
            for d in col.iter_documents()}
    n = len(docs)
    lengths = {i: sum(c.values()) for i, c in docs.items()}
    n_nonempty = sum(1 for v in lengths.values() if v)
    avgdl = sum(lengths.values()) / n_nonempty
    total = sum(lengths.values())
    q = Counter(analyzer.analyze(query))
    k1, b = p.get("k1", 1.5), p.get("b", 0.75)
    scores: dict[str, float] = {}
    for doc_id, counts in docs.items():
        s, matched = 0.0, False
        dl = lengths[doc_id]
        for t, qtf in q.items():
            tf = counts.get(t, 0)
            df = sum(1 for c in docs.values() if t in c)
            if tf == 0 or df == 0:
                continue
            matched = True
            if variant == "lucene":
                k1, b = p.get("k1", 0.9), p.get("b", 0.4)
                qdl = float(quantized_lengths(np.array([dl]))[0])
                idf = math.log(1 + (n_nonempty - df + 0.5) / (df + 0.5))
                s += qtf * idf * tf / (tf + k1 * (1 - b + b * qdl / avgdl))
            elif variant in ("robertson", "atire"):
                idf = math.log((n - df + 0.5) / (df + 0.5)) if variant == "robertson" else math.log(n / df)
                s += qtf * idf * (k1 + 1) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
            elif variant == "bm25+":
                idf = math.log((n + 1) / df)
                s += qtf * idf * ((k1 + 1) * tf / (tf + k1 * (1 - b + b * dl / avgdl)) + p.get("delta", 1.0))
            elif variant == "bm25l":
                idf = math.log((n + 1) / (df + 0.5))
                c = tf / (1 - b + b * dl / avgdl) + p.get("delta", 0.5)
                s += qtf * idf * (k1 + 1) * c / (k1 + c)
            elif variant == "dirichlet":
                mu = p.get("mu", 1000.0)
                cf = sum(c.get(t, 0) for c in docs.values())
                s += qtf * max(0.0, math.log(1 + tf / (mu * (cf + 1) / (total + 1))) + math.log(mu / (dl + mu)))
        if matched:
            scores[doc_id] = s
    return scores


VARIANTS = [("lucene", {}), ("lucene", {"k1": 1.2, "b": 0.75}), ("robertson", {}), ("atire", {"k1": 1.2}),
            ("bm25+", {"delta": 0.7}), ("bm25l", {}), ("dirichlet", {"mu": 500.0})]


@pytest.fixture(scope="module")
def small(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Collection:
    col = Collection.create(tmp_path_factory.mktemp("small") / "c")
    docs = [json.loads(line) for line in (data_dir / "cranfield" / "corpus.jsonl").open()][:200]
    col.add([{"id": d["_id"], "title": d.get("title", ""), "text": d["text"]} for d in docs[:120]])
    col.add([{"id": d["_id"], "title": d.get("title", ""), "text": d["text"]} for d in docs[120:]])  # 2 segments
    return col


@pytest.mark.parametrize("variant,params", VARIANTS)
def test_variants_equal_textbook_formulas(small: Collection, variant: str, params: dict[str, float]) -> None:
    queries = ["boundary layer flow over a flat plate", "supersonic wing heat transfer transfer"]
    res = small.search(queries, k=200, scorer=variant, **params)
    for i, q in enumerate(queries):
        expected = brute_force(small, q, variant, **params)
        got = dict(res.hits(i))
        assert set(got) == set(expected)
        for doc_id, score in expected.items():
            assert got[doc_id] == pytest.approx(score, rel=2e-5, abs=1e-5)


@pytest.mark.skipif(not HAVE_KERNEL, reason="compiled kernel not built")
@pytest.mark.parametrize("variant,params", VARIANTS)
def test_numpy_fallback_equals_kernel(small: Collection, variant: str, params: dict[str, float]) -> None:
    queries = ["boundary layer", "heat transfer at hypersonic speed", "zzzz nothing", "flow"]
    flt = {"year": {"exists": False}}
    a = BM25Retriever(small, scorer=variant, **params).search(queries, k=25, filter=flt)
    b = BM25Retriever(small, scorer=variant, use_kernel=False, **params).search(queries, k=25, filter=flt)
    assert (a.ids == b.ids).all()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_rm3_expansion() -> None:
    rm3 = RM3(fb_docs=2, fb_terms=3, original_weight=0.6)
    feedback = [(["cat", "cat", "dog", "the"], 2.0), (["cat", "fish", "x"], 1.0)]
    expanded = rm3.expand({"cat": 1.0}, feedback, df=lambda terms: [1 if t != "the" else 50 for t in terms],
                          n_docs=100)
    assert "the" not in expanded and "x" not in expanded  # too frequent / too short
    assert sum(expanded.values()) == pytest.approx(1.0)
    assert expanded["cat"] > 0.6 and set(expanded) == {"cat", "dog", "fish"}


def test_rm3_search_runs_and_changes_ranking(small: Collection) -> None:
    q = ["boundary layer transition"]
    plain = small.search(q, k=20)
    fb = small.search(q, k=20, rm3={"fb_docs": 5, "fb_terms": 10})
    assert plain.hits(0) and fb.hits(0) and plain.hits(0) != fb.hits(0)


@pytest.mark.parametrize("newer_commit", [True, False])
def test_search_retries_when_a_commit_removes_a_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        newer_commit: bool) -> None:
    """The shared per-segment loop (retrieval/inverted.py): a segment vanishing under a search is retried on the
    newer snapshot that merged it away, and reported as damage when there is none."""
    from retrievekit.core.errors import CollectionError
    from retrievekit.retrieval.bm25 import retriever as module

    col = Collection.create(tmp_path / "c")
    col.add([{"id": "a", "text": "bees make honey"}, {"id": "b", "text": "lava flows"}])
    original = module.search_segment_batch  # the batch path's per-segment call
    calls = []

    def vanishing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            if newer_commit:
                col.add([{"id": "c", "text": "honey cake"}])
            raise CollectionError("segment seg-x is missing or damaged")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "search_segment_batch", vanishing)
    if newer_commit:
        assert set(col.search("honey", k=5).ids[0]) - {None} == {"a", "c"}
        assert len(calls) == 3  # the failed call, then one per segment of the newer snapshot
    else:
        with pytest.raises(CollectionError, match="missing"):
            col.search("honey", k=5)
