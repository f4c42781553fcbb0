"""MaxScore dynamic pruning is exact: for every query, the same documents in the same order with bit-identical float32
scores as the exhaustive kernel — at k = 1, 10, 100, 1000, for every prunable scorer (Lucene BM25, BM25L, learned-sparse
impacts), with 16- and 32-bit term frequencies, deleted documents, metadata filters, several segments, and weights
repeated (ties). Tested on the kernel with random Zipf-shaped postings and through collections."""

from __future__ import annotations

import numpy as np
import pytest

from retrievekit import Collection
from retrievekit.retrieval.bm25 import kernel
from retrievekit.retrieval.bm25.retriever import BM25Retriever

_kernels = pytest.importorskip("retrievekit.index._kernels", reason="the C kernels were not built")
SCRATCH = np.zeros(_kernels.MAX_PRUNED_TERMS * _kernels.WINDOW, np.float32)


def zipf_postings(rng: np.random.Generator, n_docs: int, vocab: int, wide: bool = False):
    docs, tfs, offsets = [], [], [0]
    for t in range(vocab):
        df = max(1, int(n_docs * 0.6 / (t + 1) ** 0.9))
        docs.append(np.sort(rng.choice(n_docs, df, replace=False)).astype(np.uint32))
        high = 70_000 if wide and t % 7 == 0 else 6
        tfs.append(rng.integers(1, high, df).astype(np.uint32 if wide else np.uint16))
        offsets.append(offsets[-1] + df)
    return np.concatenate(docs), np.concatenate(tfs), np.array(offsets, np.int64)


def exhaustive(p, tids, w, c, norms, live, mode, k):
    n = len(norms)
    acc, mark, touched = np.zeros(n, np.float32), np.zeros(n, np.uint8), np.zeros(n, np.uint32)
    out_docs, out_scores = np.empty(k, np.uint32), np.empty(k, np.float32)
    m = _kernels.search_segment(*p, tids, w, c, norms, live, mode, 0.9, 0.5, k, acc, mark, touched, out_docs,
                                out_scores)
    return out_docs[:m], out_scores[:m]


def maxscore(p, tids, w, c, norms, live, mode, k, bounds):
    out_docs, out_scores = np.empty(k, np.uint32), np.empty(k, np.float32)
    m = _kernels.search_segment_maxscore(*p, tids, w, c, norms, live, mode, 0.9, 0.5, k, bounds.units,
                                         bounds.block_starts, bounds.blocks, SCRATCH, out_docs, out_scores)
    assert not SCRATCH.any()  # left zeroed for the next call
    return out_docs[:m], out_scores[:m]


@pytest.mark.parametrize("mode", [0, 1, 3])
@pytest.mark.parametrize("wide", [False, True])
def test_the_kernel_matches_the_exhaustive_pass(mode: int, wide: bool) -> None:
    rng = np.random.default_rng(mode * 2 + wide)
    n_docs, vocab = 12_000, 300  # several 4,096-document windows
    p = zipf_postings(rng, n_docs, vocab, wide)
    lengths = rng.integers(3, 400, n_docs)
    norms = (0.9 * (1 - 0.4 + 0.4 * lengths / lengths.mean())).astype(np.float32)
    bounds = kernel.term_bounds(*p, norms, mode, 0.9, 0.5, np.arange(vocab, dtype=np.int64),
                                kernel.TermBounds.empty(p[2]))
    assert not np.isnan(bounds.units).any()
    # a block's bound is its largest posting's; a term's the largest of its blocks
    first = bounds.blocks[bounds.block_starts[0]:bounds.block_starts[1]]
    assert bounds.units[0] == first.max() and len(first) == -(-(p[2][1] - p[2][0]) // kernel.BLOCK)
    for trial in range(60):
        tids = rng.permutation(np.unique(rng.integers(0, 80 if trial % 2 else vocab, rng.integers(1, 14))))
        w = rng.uniform(0.05, 4.0, len(tids))
        w[rng.random(len(tids)) < 0.3] = 1.0  # equal weights: equal scores, ties by document number
        if trial % 5 == 4:
            w[0] = 0.0  # a term that scores 0: its documents are still candidates (the kernel's marked path)
        c = rng.uniform(0, 0.3, len(tids)) if mode == 0 and trial % 3 == 0 else np.zeros(len(tids))
        live = None if trial % 4 else (rng.random(n_docs) < 0.6).astype(np.uint8)
        for k in (1, 10, 100, 1000):
            want = exhaustive(p, tids.astype(np.int64), w, c, norms, live, mode, k)
            got = maxscore(p, tids.astype(np.int64), w, c, norms, live, mode, k, bounds)
            assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1]), (trial, k)



@pytest.mark.parametrize("mode", [0, 3])
def test_the_exhaustive_kernel_over_several_of_its_windows(mode: int) -> None:
    # 150,000 documents: the exhaustive pass works 65,536 documents at a time (two whole windows and a part);
    # MaxScore, another traversal with its own 4,096-document windows, must find exactly the same top k
    rng = np.random.default_rng(40 + mode)
    n_docs, vocab = 150_000, 120
    p = zipf_postings(rng, n_docs, vocab)
    lengths = rng.integers(3, 400, n_docs)
    norms = (0.9 * (1 - 0.4 + 0.4 * lengths / lengths.mean())).astype(np.float32)
    bounds = kernel.term_bounds(*p, norms, mode, 0.9, 0.5, np.arange(vocab, dtype=np.int64),
                                kernel.TermBounds.empty(p[2]))
    for trial in range(12):
        tids = rng.permutation(np.unique(rng.integers(0, vocab, rng.integers(1, 8)))).astype(np.int64)
        w = rng.uniform(0.05, 4.0, len(tids))
        w[rng.random(len(tids)) < 0.3] = 1.0  # ties
        c = np.zeros(len(tids))
        live = None if trial % 3 else (rng.random(n_docs) < 0.5).astype(np.uint8)
        for k in (1, 10, 1000):
            want = maxscore(p, tids, w, c, norms, live, mode, k, bounds)
            got = exhaustive(p, tids, w, c, norms, live, mode, k)
            assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1]), (trial, k)
            assert len(got[0]) == k  # every query has more than k candidates here
            if k == 1000:  # and the hits come from every window, not just the first
                assert got[0].max() >= 2 * 65_536 or live is not None

def test_the_kernel_checks_its_inputs() -> None:
    rng = np.random.default_rng(1)
    p = zipf_postings(rng, 500, 20)
    norms = np.ones(500, np.float32)
    bounds = kernel.term_bounds(*p, norms, 0, 0.9, 0.0, np.arange(20, dtype=np.int64), kernel.TermBounds.empty(p[2]))
    tids = np.array([0, 1], np.int64)
    with pytest.raises(ValueError, match="weights and constants must be >= 0"):
        maxscore(p, tids, np.array([1.0, -0.5]), np.zeros(2), norms, None, 0, 10, bounds)
    with pytest.raises(ValueError, match="no bound for this scoring mode"):
        maxscore(p, tids, np.ones(2), np.zeros(2), norms, None, 2, 10, bounds)  # Dirichlet LM
    with pytest.raises(ValueError, match="term id or posting range out of bounds"):
        maxscore(p, np.array([0, 99], np.int64), np.ones(2), np.zeros(2), norms, None, 0, 10, bounds)
    many = np.arange(17, dtype=np.int64)
    with pytest.raises(ValueError, match="at most 16 terms"):
        maxscore(p, many, np.ones(17), np.zeros(17), norms, None, 0, 10, bounds)
    with pytest.raises(ValueError, match="document number out of range"):
        maxscore(p, tids, np.ones(2), np.zeros(2), norms[:100], None, 0, 10, bounds)  # postings beyond the norms
    with pytest.raises(ValueError, match="term id out of range"):
        _kernels.term_bounds(*p, norms, 0, 0.9, 0.0, np.array([20], np.int64), bounds.block_starts, bounds.units,
                             bounds.blocks)


WORDS = [f"w{i}" for i in range(400)]


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    ranks = np.minimum(rng.zipf(1.15, size=(n, 60)) - 1, len(WORDS) - 1)
    lengths = rng.integers(5, 60, n)
    return [" ".join(WORDS[r] for r in row[:m]) for row, m in zip(ranks, lengths)]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    rng = np.random.default_rng(7)
    col = Collection.create(tmp_path_factory.mktemp("pruning") / "c", analyzer="whitespace")
    for batch in range(3):  # three segments
        texts = _texts(rng, 4_000)
        col.add([{"id": f"d{batch}-{i}", "text": t, "metadata": {"shard": i % 3}} for i, t in enumerate(texts)])
    col.delete([f"d1-{i}" for i in range(0, 4_000, 5)])
    return col


def _queries(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(WORDS[r] for r in np.minimum(rng.zipf(1.3, size=rng.integers(2, 9)) - 1, 399)) for _ in range(n)]


@pytest.mark.parametrize("scorer", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_collections_search_the_same_with_and_without_pruning(collection, monkeypatch, scorer: str) -> None:
    monkeypatch.setattr(kernel, "PRUNE_MIN_POSTINGS", 0)  # prune every query, short lists and large k included
    monkeypatch.setattr(kernel, "PRUNE_MAX_K", 10_000)
    queries = _queries(np.random.default_rng(3), 60)
    for k in (1, 10, 100, 1000):
        for filter in (None, {"shard": 1}):
            want = BM25Retriever(collection, scorer=scorer, pruning=False).search(queries, k, filter=filter)
            got = BM25Retriever(collection, scorer=scorer).search(queries, k, filter=filter)
            for i in range(len(queries)):
                assert list(want.ids[i]) == list(got.ids[i]), (k, filter, queries[i])
                assert np.array_equal(np.asarray(want.scores[i]), np.asarray(got.scores[i]))


def test_the_cost_rule() -> None:
    offsets = np.array([0, 100_000, 100_010, 100_020], np.int64)
    long_and_rare = np.array([0, 1], np.int64)
    ones, zeros = np.ones(2), np.zeros(2)
    assert kernel.prune(offsets, long_and_rare, ones, zeros, 0, 10)
    assert not kernel.prune(offsets, np.array([1, 2], np.int64), ones, zeros, 0, 10)  # short lists: exhaustive
    assert kernel.prune(offsets, np.array([0], np.int64), np.ones(1), np.zeros(1), 0, 10)  # one long list
    many = np.zeros(kernel.MAX_PRUNED_TERMS + 1, np.int64)
    assert not kernel.prune(offsets, many, np.ones(len(many)), np.zeros(len(many)), 0, 10)  # a long query
    assert not kernel.prune(offsets, long_and_rare, ones, zeros, 0, 100)  # a large k: too little to skip
    assert not kernel.prune(offsets, long_and_rare, ones, zeros, 2, 10)  # Dirichlet: no bound
    assert not kernel.prune(offsets, long_and_rare, np.array([1.0, -1.0]), zeros, 0, 10)  # a negative weight
    # a large segment: MaxScore for short lists and k up to 100 too, never for a bound-less mode or k = 1000
    large = kernel.PRUNE_LARGE_SEGMENT
    short = np.array([1, 2], np.int64)
    assert kernel.prune(offsets, short, ones, zeros, 0, 10, n_docs=large)
    assert kernel.prune(offsets, short, ones, zeros, 0, 100, n_docs=large)
    assert not kernel.prune(offsets, short, ones, zeros, 0, 1000, n_docs=large)
    assert not kernel.prune(offsets, short, ones, zeros, 2, 10, n_docs=large)
    assert not kernel.prune(offsets, short, ones, zeros, 0, 10, n_docs=large - 1)


@pytest.mark.parametrize("threads", [1, 3])
def test_the_batch_path_equals_one_query_at_a_time(collection, threads: int) -> None:
    """search() sends each segment's queries to the kernel in one call; search_terms() one query at a time: the same
    documents and float32 scores, over three segments, deletions and a filter."""
    from collections import Counter

    queries = _queries(np.random.default_rng(5), 40) + ["", "w1 w1 w2", "unknownword", "w3 unknownword"]
    retriever = BM25Retriever(collection)
    snap = collection.snapshot()
    for k in (1, 10, 1000):
        for filter in (None, {"shard": 2}):
            batch = retriever.search(queries, k, filter=filter, threads=threads)
            allowed = snap.allowed(filter)
            for i, q in enumerate(queries):
                bag = {t: float(n) for t, n in Counter(collection.analyzer.analyze(q)).items()}
                numbers, scores = retriever.search_terms(snap, bag, k, allowed)
                assert [d for d in batch.ids[i] if d is not None] == list(snap.id_array[numbers]), (k, q)
                assert np.array_equal(batch.scores[i][: len(scores)], scores)
