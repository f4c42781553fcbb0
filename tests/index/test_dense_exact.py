"""Exact inner-product search equals a plain numpy full sort: several blocks, masks, ties, chunk boundaries, threads,
memory-mapped input; bad input gives DenseSearchError."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrievekit.core.errors import RetrievekitError
from retrievekit.index.dense import exact
from retrievekit.index.dense.exact import DenseSearchError, exact_search


def reference(queries: np.ndarray, blocks: list[np.ndarray], k: int,
              allowed: list[np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full sort of every allowed document by (score descending, global number ascending)."""
    dim = queries.shape[1]
    x = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
    ok = np.concatenate([np.ones(len(b), bool) if allowed is None or allowed[i] is None else allowed[i] != 0
                         for i, b in enumerate(blocks)]) if blocks else np.zeros(0, bool)
    candidates = np.flatnonzero(ok)
    scores = (queries.astype(np.float64) @ x.T.astype(np.float64)).astype(np.float32)
    docs = np.full((len(queries), k), -1, np.int64)
    top = np.full((len(queries), k), -np.inf, np.float32)
    for i in range(len(queries)):
        order = np.lexsort((candidates, -scores[i, candidates]))[:k]
        docs[i, :len(order)] = candidates[order]
        top[i, :len(order)] = scores[i, candidates[order]]
    return docs, top


def int_matrix(rng: np.random.Generator, n: int, dim: int, lo: int = -2, hi: int = 3) -> np.ndarray:
    """Small integers: every inner product is exact in float32, so ties are real ties."""
    return rng.integers(lo, hi, (n, dim)).astype(np.float32)


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use worker threads even on tiny inputs."""
    monkeypatch.setattr(exact, "MIN_PARALLEL_WORK", 0)


def assert_same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    assert got[0].dtype == np.int64 and got[1].dtype == np.float32
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("m", [1, 5])
@pytest.mark.parametrize("chunk_rows", [None, 1, 7, 64])
@pytest.mark.parametrize("threads", [1, 3])
def test_blocks_ties_and_chunk_boundaries(m: int, chunk_rows: int | None, threads: int, parallel: None) -> None:
    rng = np.random.default_rng(m * 100 + (chunk_rows or 0) + threads)
    blocks = [int_matrix(rng, n, 6) for n in (130, 0, 1, 257, 64)]
    q = int_matrix(rng, m, 6)
    for k in (1, 10, 64):
        assert_same(exact_search(q, blocks, k, chunk_rows=chunk_rows, threads=threads), reference(q, blocks, k))


@pytest.mark.parametrize("m", [1, 4])
@pytest.mark.parametrize("threads", [1, 2])
def test_masks_dense_sparse_and_empty(m: int, threads: int, parallel: None) -> None:
    rng = np.random.default_rng(7 + m)
    blocks = [int_matrix(rng, n, 5) for n in (300, 200, 150, 90, 40)]
    allowed = [
        rng.random(300) < 0.9,  # dense mask: scored in place, masked scores dropped
        (rng.random(200) < 0.05).astype(np.uint8) * 255,  # sparse uint8 mask: allowed rows gathered
        None,
        np.zeros(90, np.uint8),  # nothing allowed
        np.ones(40, bool),  # everything allowed
    ]
    q = int_matrix(rng, m, 5)
    for chunk_rows in (None, 16):
        for k in (3, 50, 1000):  # 1000 > the number of allowed documents: padded with -1 / -inf
            got = exact_search(q, blocks, k, allowed=allowed, threads=threads, chunk_rows=chunk_rows)
            assert_same(got, reference(q, blocks, k, allowed))
    n_allowed = sum(int(np.count_nonzero(a)) if a is not None else len(b) for a, b in zip(allowed, blocks))
    docs, scores = exact_search(q, blocks, 1000, allowed=allowed)
    assert (docs >= 0).sum(axis=1).tolist() == [n_allowed] * m
    assert np.isneginf(scores[:, n_allowed:]).all()


def test_all_equal_scores_return_lowest_numbers(parallel: None) -> None:
    blocks = [np.ones((50, 4), np.float32), np.ones((70, 4), np.float32)]
    q = np.ones((3, 4), np.float32)
    for threads in (1, 2):
        docs, scores = exact_search(q, blocks, 60, threads=threads, chunk_rows=8)
        np.testing.assert_array_equal(docs, np.tile(np.arange(60), (3, 1)))
        assert (scores == 4).all()


def test_zero_signs_tie(parallel: None) -> None:
    # -0.0 and 0.0 are equal scores: the lower document number must come first either way.
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], np.float32)
    q = np.array([[-0.0, 0.0], [0.0, 0.0]], np.float32)
    docs, _ = exact_search(q, [x], 3, chunk_rows=1, threads=2)
    np.testing.assert_array_equal(docs, [[0, 1, 2], [0, 1, 2]])


@pytest.mark.parametrize("threads", [1, 2])
def test_adversarial_order_cuts_heavy_queries(threads: int, parallel: None) -> None:
    # Document i is i * v: queries aligned with v find a better document in every chunk (many survivors per chunk,
    # cut to k by partition), queries opposed to v are settled by the first chunk, orthogonal ones are all ties.
    n = 20000
    v = np.array([1, 2, -1, 0], np.float32)
    x = np.arange(n, dtype=np.float32)[:, None] * v
    q = np.array([[1, 1, 0, 0], [0, 1, 1, 5], [-1, 0, 0, 0], [0, 0, 0, 1], [2, 0, 1, 0]], np.float32)
    for k in (1, 5, 40):
        assert_same(exact_search(q, [x], k, chunk_rows=4096, threads=threads), reference(q, [x], k))
        for one in q:  # a single query takes the matrix-vector path and its own cut
            assert_same(exact_search(one[None], [x], k, chunk_rows=8192, threads=threads),
                        reference(one[None], [x], k))


@pytest.mark.parametrize("threads", [1, 2])
def test_peak_inside_a_cut_chunk(threads: int, parallel: None) -> None:
    # Scores rise to a peak mid-collection and fall again: the chunk holding the peak has many survivors and is
    # cut to its k best, which must then be exactly the final top-k (ties mirrored around the peak).
    n = 20000
    height = (n // 2 - np.abs(np.arange(n) - n // 2)).astype(np.float32)
    x = height[:, None] * np.array([1, 2, -1], np.float32)
    q = np.array([[1, 1, 1], [2, 0, 1], [0, 1, 0], [-1, 0, 0], [0, 1, 2]], np.float32)
    for k in (1, 5, 40):
        assert_same(exact_search(q, [x], k, chunk_rows=4096, threads=threads), reference(q, [x], k))
        assert_same(exact_search(q[:1], [x], k, chunk_rows=8192, threads=threads), reference(q[:1], [x], k))


def test_merge_treats_signed_zeros_as_ties() -> None:
    top_scores = np.full((1, 2), -np.inf, np.float32)
    top_docs = np.full((1, 2), -1, np.int64)
    scores = np.array([0.0, -0.0, 0.0], np.float32)
    exact._merge(top_scores, top_docs, np.zeros(3, np.intp), scores, np.array([9, 3, 5]), in_doc_order=False)
    assert top_docs.tolist() == [[3, 5]]


def test_float_data_matches_reference() -> None:
    rng = np.random.default_rng(3)
    blocks = [rng.standard_normal((n, 48), dtype=np.float32) for n in (3000, 1000)]
    q = rng.standard_normal((6, 48), dtype=np.float32)
    want_docs, want_scores = reference(q, blocks, 20)
    for m in (1, 6):  # one query (matrix-vector path) and a batch (sgemm path)
        docs, scores = exact_search(q[:m], blocks, 20)
        np.testing.assert_allclose(scores, want_scores[:m], rtol=1e-5, atol=1e-5)
        full = q[:m] @ np.concatenate(blocks).T
        # Each returned document really has (up to rounding) the returned score.
        np.testing.assert_allclose(np.take_along_axis(full, docs, axis=1), scores, rtol=1e-5, atol=1e-5)
        assert (np.mean(docs == want_docs[:m])) > 0.95


def test_query_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exact, "MAX_QUERY_BLOCK", 3)
    rng = np.random.default_rng(11)
    blocks = [int_matrix(rng, 400, 8)]
    q = int_matrix(rng, 8, 8)
    assert_same(exact_search(q, blocks, 12), reference(q, blocks, 12))


def test_readonly_memmap(tmp_path: Path, parallel: None) -> None:
    rng = np.random.default_rng(5)
    a, b = int_matrix(rng, 500, 8), int_matrix(rng, 300, 8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    blocks = [np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "b.npy", mmap_mode="r")]
    mask = rng.random(300) < 0.1
    np.save(tmp_path / "mask.npy", mask)
    masks = [None, np.load(tmp_path / "mask.npy", mmap_mode="r")]
    q = int_matrix(rng, 3, 8)
    q.setflags(write=False)
    for threads in (1, 2):
        assert_same(exact_search(q, blocks, 25, allowed=masks, threads=threads, chunk_rows=100),
                    reference(q, [a, b], 25, [None, mask]))


def test_empty_inputs() -> None:
    x = np.ones((4, 3), np.float32)
    docs, scores = exact_search(np.zeros((0, 3), np.float32), [x], 5)
    assert docs.shape == scores.shape == (0, 5)
    docs, scores = exact_search(np.ones((2, 3), np.float32), [], 5)
    assert (docs == -1).all() and np.isneginf(scores).all() and docs.shape == (2, 5)
    docs, _ = exact_search(np.ones((1, 3), np.float32), [np.zeros((0, 3), np.float32)], 2)
    assert docs.tolist() == [[-1, -1]]


def test_float64_queries_are_converted() -> None:
    rng = np.random.default_rng(2)
    x = int_matrix(rng, 100, 4)
    q = int_matrix(rng, 2, 4)
    assert_same(exact_search(q.astype(np.float64), [x], 7), reference(q, [x], 7))


def test_blas_thread_limit_is_restored_and_shared() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()]
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4000, 32), dtype=np.float32)
    q = rng.standard_normal((16, 32), dtype=np.float32)
    want = exact_search(q, [x], 10)
    results: list[tuple[np.ndarray, np.ndarray]] = []

    def search() -> None:
        for _ in range(5):
            results.append(exact_search(q, [x], 10, threads=2))

    runners = [threading.Thread(target=search) for _ in range(3)]
    for t in runners:
        t.start()
    for t in runners:
        t.join()
    assert len(results) == 15
    for got in results:
        assert_same(got, want)
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()] == before


def test_works_without_threadpoolctl(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import now raises ImportError
    monkeypatch.setattr(exact, "_blas_controller", None)
    monkeypatch.setattr(exact, "_blas_unavailable", False)
    rng = np.random.default_rng(4)
    x = int_matrix(rng, 200, 6)
    q = int_matrix(rng, 4, 6)
    with caplog.at_level("WARNING", logger=exact.__name__):
        assert_same(exact_search(q, [x], 9), reference(q, [x], 9))
    assert "threadpoolctl is not installed" in caplog.text


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    m=st.integers(1, 4),
    k=st.integers(1, 30),
    chunk_rows=st.one_of(st.none(), st.integers(1, 20)),
    mask_density=st.sampled_from([None, 0.0, 0.1, 0.5, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_property_matches_reference(sizes: list[int], m: int, k: int, chunk_rows: int | None,
                                    mask_density: float | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    blocks = [int_matrix(rng, n, 3, -1, 2) for n in sizes]
    allowed = None if mask_density is None else [rng.random(n) < mask_density for n in sizes]
    q = int_matrix(rng, m, 3, -1, 2)
    assert_same(exact_search(q, blocks, k, allowed=allowed, chunk_rows=chunk_rows), reference(q, blocks, k, allowed))


@pytest.mark.parametrize(
    ("queries", "blocks", "kwargs", "match"),
    [
        (np.ones(3, np.float32), [np.ones((2, 3), np.float32)], {}, "2-D"),
        (np.ones((1, 3), np.int32), [np.ones((2, 3), np.float32)], {}, "floating point"),
        (np.array([[np.nan, 0, 0]], np.float32), [np.ones((2, 3), np.float32)], {}, "NaN"),
        (np.ones((1, 3), np.float32), [np.ones((2, 4), np.float32)], {}, r"shape \(n, 3\)"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float64)], {}, "float32"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float32)], {"k": 0}, "k must"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float32)], {"k": True}, "k must"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float32)], {"threads": 0}, "threads"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float32)], {"chunk_rows": 0}, "chunk_rows"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float32)], {"allowed": [None, None]}, "2 entries"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float32)], {"allowed": [np.ones(3, bool)]}, r"\(2,\)"),
        (np.ones((1, 3), np.float32), [np.ones((2, 3), np.float32)], {"allowed": [np.ones(2, np.int64)]},
         "bool or uint8"),
    ],
)
def test_bad_input(queries: np.ndarray, blocks: list[np.ndarray], kwargs: dict[str, object], match: str) -> None:
    args = {"k": 2, **kwargs}
    with pytest.raises(DenseSearchError, match=match) as info:
        exact_search(queries, blocks, **args)  # type: ignore[arg-type]
    assert isinstance(info.value, RetrievekitError) and isinstance(info.value, ValueError)
