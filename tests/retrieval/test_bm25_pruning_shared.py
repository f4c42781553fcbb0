"""MaxScore is exact on the real shared sets too: for every test query of each set the benchmarks prune (and SciFact
documents used as ~200-word queries), the same ids and bit-identical scores as the exhaustive kernel at k = 10, 100
and 1000, with and without a metadata filter, before and after deleting documents. The sets are found by
``paths.shared_data``: under CI a missing set fails."""

from __future__ import annotations

import numpy as np
import pytest
from paths import shared_data

from retrievekit import Collection
from retrievekit.evaluation import load_beir
from retrievekit.ingest import read_documents
from retrievekit.retrieval.bm25 import kernel
from retrievekit.retrieval.bm25.retriever import BM25Retriever

pytest.importorskip("retrievekit.index._kernels", reason="the C kernels were not built")

SETS = ["scifact", "nfcorpus-orig-test", "cranfield", "cacm", "cosqa"]


def _same(col: Collection, queries: list[str], k: int, filter: dict | None) -> None:
    want = BM25Retriever(col, pruning=False).search(queries, k, filter=filter)
    got = BM25Retriever(col).search(queries, k, filter=filter)
    for i, query in enumerate(queries):
        assert list(want.ids[i]) == list(got.ids[i]), (k, filter, query[:80])
        assert np.array_equal(np.asarray(want.scores[i]), np.asarray(got.scores[i])), (k, filter, query[:80])


@pytest.mark.parametrize("name", SETS)
def test_pruning_is_exact_on_a_shared_set(name: str, tmp_path, monkeypatch) -> None:
    folder = shared_data(name)
    # MaxScore for every query it can take (short posting lists and large k included), not only where the cost
    # rule would choose it: what is checked is that it is exact, wherever it runs
    monkeypatch.setattr(kernel, "PRUNE_MIN_POSTINGS", 0)
    monkeypatch.setattr(kernel, "PRUNE_MAX_K", 10_000)
    docs = list(read_documents(folder / "corpus.jsonl"))
    col = Collection.create(tmp_path / name)  # the default analyzer: Lucene's English
    col.add([{"id": d.id, "title": d.title, "text": d.text, "metadata": {"part": i % 3}}
             for i, d in enumerate(docs)])
    dataset = load_beir(folder)
    queries = [dataset.queries[q] for q in dataset.qrels if q in dataset.queries]
    if name == "scifact":  # long queries: documents as queries (past MAX_PRUNED_TERMS terms they stay exhaustive)
        queries += [f"{d.title} {d.text}" for d in docs[:50]]
    assert len(queries) >= 50
    for deleted in (False, True):
        if deleted:
            col.delete([d.id for d in docs[::7]])
        for k in (10, 100, 1000):
            for filter in (None, {"part": 1}):
                _same(col, queries, k, filter)
