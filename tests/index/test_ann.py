"""ANN indexes (FAISS HNSW / IVF / IVF-PQ): recall against exact search, filtering, persistence, registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

from retrievekit.core.errors import RetrievekitError
from retrievekit.index.dense.ann import (
    ANNError,
    ANNIndex,
    HNSWIndex,
    IVFIndex,
    get_ann,
    load_ann,
)
from retrievekit.index.dense.exact import exact_search

N, DIM, CLUSTERS, K = 10_000, 64, 50, 10


def _unit(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    centers = _unit(rng.standard_normal((CLUSTERS, DIM)))
    which = rng.integers(0, CLUSTERS, N)
    x = _unit(centers[which] + rng.standard_normal((N, DIM)) * 0.8 / np.sqrt(DIM))
    q = _unit(x[rng.integers(0, N, 200)] + rng.standard_normal((200, DIM)) * 0.4 / np.sqrt(DIM))
    return x, q


@pytest.fixture(scope="module")
def truth(data: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    x, q = data
    return exact_search(q, [x], K)[0]


@pytest.fixture(scope="module")
def hnsw(data: tuple[np.ndarray, np.ndarray]) -> HNSWIndex:
    index = HNSWIndex(m=16, ef_construction=100)
    index.build(data[0])
    return index


@pytest.fixture(scope="module")
def ivf(data: tuple[np.ndarray, np.ndarray]) -> IVFIndex:
    index = IVFIndex()
    index.build(data[0])
    return index


def _recall(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, expected)]))


@pytest.mark.parametrize("name", ["hnsw", "ivf"])
def test_recall_at_default_search_params(name: str, request: pytest.FixtureRequest, data, truth) -> None:
    index: ANNIndex = request.getfixturevalue(name)
    docs, scores = index.search(data[1], K)
    assert docs.dtype == np.int64 and scores.dtype == np.float32 and docs.shape == (len(data[1]), K)
    assert _recall(docs, truth) >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    # Scores are true inner products of the returned documents.
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", data[1], data[0][docs]), atol=1e-5)


def test_ivfpq_with_refinement_recall(data, truth) -> None:
    index = get_ann("ivfpq:m=16,nprobe=32")
    index.build(data[0])
    docs, scores = index.search(data[1], K)
    assert _recall(docs, truth) >= 0.9
    # Refinement re-scores with the float vectors: scores are exact inner products.
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", data[1], data[0][docs]), atol=1e-5)
    assert index.memory_bytes() > 0


@pytest.mark.parametrize("name", ["hnsw", "ivf"])
def test_allowed_mask_is_respected_inside_the_index(name: str, request: pytest.FixtureRequest, data) -> None:
    x, q = data
    index: ANNIndex = request.getfixturevalue(name)
    mask = np.random.default_rng(1).random(N) < 0.5
    old = index.exact_below, getattr(index, "ef_search", None), getattr(index, "nprobe", None)
    index.exact_below = 0  # force the FAISS selector path
    try:
        if isinstance(index, HNSWIndex):
            index.ef_search = 1000
        elif isinstance(index, IVFIndex):
            index.nprobe = 10_000  # clipped to nlist: exhaustive
        docs, scores = index.search(q, K, allowed=mask)
        docs8, _ = index.search(q, K, allowed=mask.astype(np.uint8))
    finally:
        index.exact_below = old[0]
        if isinstance(index, HNSWIndex):
            index.ef_search = old[1]
        elif isinstance(index, IVFIndex):
            index.nprobe = old[2]
    assert np.all(mask[docs[docs >= 0]])
    exp_docs, exp_scores = exact_search(q, [x], K, allowed=[mask])
    assert _recall(docs, exp_docs) >= (0.999 if name == "ivf" else 0.99)
    if name == "ivf":  # exhaustive probing is exact (up to ties of equal score)
        np.testing.assert_allclose(scores, exp_scores, atol=1e-5)
    np.testing.assert_array_equal(docs, docs8)


@pytest.mark.parametrize("name", ["hnsw", "ivf"])
def test_very_selective_mask_falls_back_to_exact(name: str, request: pytest.FixtureRequest, data) -> None:
    x, q = data
    index: ANNIndex = request.getfixturevalue(name)
    mask = np.zeros(N, bool)
    mask[np.random.default_rng(2).choice(N, 25, replace=False)] = True
    docs, scores = index.search(q, K, allowed=mask)
    exp_docs, exp_scores = exact_search(q, [x], K, allowed=[mask])
    np.testing.assert_array_equal(docs, exp_docs)
    np.testing.assert_allclose(scores, exp_scores, atol=1e-5)
    # Fewer allowed documents than k: padded with -1 / -inf.
    three = np.zeros(N, bool)
    three[[5, 500, 5000]] = True
    docs, scores = index.search(q[:4], K, allowed=three)
    assert np.all(np.sort(docs[:, :3], axis=1) == [5, 500, 5000])
    assert np.all(docs[:, 3:] == -1) and np.all(np.isneginf(scores[:, 3:]))
    # Nothing allowed.
    docs, scores = index.search(q[:2], K, allowed=np.zeros(N, bool))
    assert np.all(docs == -1) and np.all(np.isneginf(scores))


@pytest.mark.parametrize("spec", ["hnsw:m=16,efc=80", "ivf", "ivfpq:m=8,nlist=64"])
def test_save_load_round_trip(spec: str, tmp_path: Path, data) -> None:
    x, q = data
    index = get_ann(spec)
    index.build(x[:3000])
    docs, scores = index.search(q, K)
    index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["ann.json", "index.faiss"]
    meta = json.loads((tmp_path / "idx" / "ann.json").read_text())
    assert meta["ntotal"] == 3000 and meta["dim"] == DIM
    loaded = load_ann(tmp_path / "idx")
    assert type(loaded) is type(index) and loaded.config() == index.config() and len(loaded) == 3000
    docs2, scores2 = loaded.search(q, K)
    np.testing.assert_array_equal(docs, docs2)
    np.testing.assert_array_equal(scores, scores2)
    mask = np.zeros(3000, bool)
    mask[::97] = True
    np.testing.assert_array_equal(index.search(q, K, allowed=mask)[0], loaded.search(q, K, allowed=mask)[0])
    # Loaded indexes keep growing.
    loaded.add(x[3000:3100])
    assert len(loaded) == 3100


def test_search_params_settable_after_load(tmp_path: Path, data) -> None:
    index = IVFIndex(nlist=64, nprobe=1)
    index.build(data[0])
    index.save(tmp_path)
    loaded = load_ann(tmp_path)
    assert isinstance(loaded, IVFIndex) and loaded.nprobe == 1
    low = _recall(loaded.search(data[1], K)[0], exact_search(data[1], [data[0]], K)[0])
    loaded.nprobe = 64
    high = _recall(loaded.search(data[1], K)[0], exact_search(data[1], [data[0]], K)[0])
    assert high > low and high > 0.999


@pytest.mark.parametrize("spec", ["hnsw:m=16,efc=80", "ivf:nlist=32"])
def test_incremental_add_numbers_continue(spec: str, data) -> None:
    x = data[0]
    index = get_ann(spec)
    index.build(x[:4000])
    index.add(x[4000:7000])
    index.add(x[7000:])
    assert len(index) == N
    # A document queried by its own vector is its own best hit, whichever batch it came in.
    probe = np.array([10, 4500, 9999])
    docs, scores = index.search(x[probe], 1)
    np.testing.assert_array_equal(docs[:, 0], probe)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_add_on_empty_index_builds(data) -> None:
    index = HNSWIndex(m=8, ef_construction=40)
    index.add(data[0][:500])
    assert len(index) == 500 and index.dim == DIM


@pytest.mark.parametrize("spec", ["hnsw", "ivf:nlist=4"])
def test_k_larger_than_n(spec: str, data) -> None:
    x, q = data
    index = get_ann(spec)
    index.build(x[:20])
    docs, scores = index.search(q[:3], 50)
    assert docs.shape == (3, 50)
    for row, srow in zip(docs, scores):
        assert sorted(row[row >= 0]) == list(range(20))  # tiny index, exhaustive search finds all
        assert np.all(row[20:] == -1) and np.all(np.isneginf(srow[20:]))


def test_threads_option_restores_previous_setting(data) -> None:
    import faiss

    before = faiss.omp_get_max_threads()
    index = get_ann("hnsw:m=8,efc=40,threads=1")
    assert index.threads == 1
    index.build(data[0][:1000])
    index.search(data[1], K)
    assert faiss.omp_get_max_threads() == before


@pytest.mark.parametrize("bad", ["annoy", "hnsw:mm=3", "hnsw:m", "ivf:nlist=abc", "hnsw:m=1", "ivf:nprobe=0", ""])
def test_bad_names_raise_clear_errors(bad: str) -> None:
    with pytest.raises(RetrievekitError) as info:
        get_ann(bad)
    assert isinstance(info.value, ANNError)


def test_registry_parsing_and_unknown_keyword() -> None:
    h = get_ann("hnsw:m=24,ef=64,efc=120")
    assert isinstance(h, HNSWIndex) and (h.m, h.ef_search, h.ef_construction) == (24, 64, 120)
    i = get_ann("ivf:nlist=1024,nprobe=32")
    assert isinstance(i, IVFIndex) and (i.nlist, i.nprobe, i.pq_m) == (1024, 32, None)
    p = get_ann("ivfpq:m=48", nprobe=8)
    assert isinstance(p, IVFIndex) and (p.pq_m, p.nprobe, p.refine) == (48, 8, True)
    with pytest.raises(ANNError, match="accepted"):
        get_ann("hnsw", nprobe=3)


def test_bad_inputs(hnsw: HNSWIndex, data, tmp_path: Path) -> None:
    x, q = data
    with pytest.raises(ANNError, match="empty"):
        HNSWIndex().search(q, K)
    with pytest.raises(ANNError, match="dim"):
        hnsw.search(q[:, :10], K)
    with pytest.raises(ANNError, match="k must"):
        hnsw.search(q, 0)
    with pytest.raises(ANNError, match="shape"):
        hnsw.search(q, K, allowed=np.ones(5, bool))
    with pytest.raises(ANNError, match="bool or uint8"):
        hnsw.search(q, K, allowed=np.ones(N, np.int64))
    with pytest.raises(ANNError, match="NaN"):
        hnsw.search(np.full((1, DIM), np.nan, np.float32), K)
    with pytest.raises(ANNError, match="divide"):
        IVFIndex(nlist=8, pq_m=7).build(x[:2000])
    with pytest.raises(ANNError, match="at least"):
        IVFIndex(nlist=100).build(x[:50])
    with pytest.raises(ANNError, match="missing"):
        load_ann(tmp_path)
    assert hnsw.search(q[:0], K)[0].shape == (0, K)
