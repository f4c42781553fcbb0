"""Hamming top-k: compiled kernel == numpy fallback == brute force, and binary search_compressed is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from retrievekit.index.dense.tiers import BinaryTier, TierError, hamming_distances, search_compressed
from retrievekit.index.dense.tiers.hamming import HAVE_KERNEL, hamming_topk

needs_kernel = pytest.mark.skipif(not HAVE_KERNEL, reason="C extension not built")


def brute(q: np.ndarray, c: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Reference: sort every allowed row by (distance, row)."""
    d = hamming_distances(q, c)
    rows = np.arange(len(c)) if allowed is None else np.flatnonzero(allowed)
    ids = np.full((len(q), k), -1, dtype=np.int64)
    dist = np.full((len(q), k), -1, dtype=np.int32)
    for i in range(len(q)):
        order = sorted(rows.tolist(), key=lambda j: (d[i, j], j))[:k]
        ids[i, :len(order)] = order
        dist[i, :len(order)] = d[i, order]
    return ids, dist


def codes(rng: np.random.Generator, n: int, nbytes: int, low_entropy: bool) -> np.ndarray:
    c = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    if low_entropy:  # few distinct distances: many ties at the cut
        c &= np.uint8(0x03)
    return c


CASES = [(nbytes, n, k, masked, low)
         for nbytes in (1, 3, 8, 13, 48)
         for n, k in ((1, 1), (7, 3), (200, 10), (200, 250), (1500, 40))
         for masked in (False, True)
         for low in (False, True)]


# "simd": the kernel's best path (AVX-512 where the CPU has it), "plain": its portable C path, "numpy": the fallback.
PATHS = [pytest.param({}, id="simd", marks=needs_kernel), pytest.param({"simd": False}, id="plain", marks=needs_kernel),
         pytest.param({"use_kernel": False}, id="numpy")]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("nbytes", "n", "k", "masked", "low"), CASES)
def test_matches_brute_force(path: dict, nbytes: int, n: int, k: int, masked: bool, low: bool) -> None:
    rng = np.random.default_rng(nbytes * 1000 + n + k)
    c = codes(rng, n, nbytes, low)
    q = codes(rng, 11, nbytes, low)  # one full block of 8 queries and a partial one
    allowed = rng.random(n) < 0.4 if masked else None
    ids, dist = hamming_topk(q, c, k, allowed, **path)
    want_ids, want_dist = brute(q, c, k, allowed)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(dist, want_dist)


@needs_kernel
def test_kernel_equals_fallback_on_larger_batch() -> None:
    # More queries than one kernel query block, rows spanning several tiles, uint8 mask, a memmap-like view.
    rng = np.random.default_rng(7)
    c = codes(rng, 5000, 6, True)
    q = codes(rng, 19, 6, True)
    allowed = (rng.random(5000) < 0.9).astype(np.uint8)
    for mask in (None, allowed):
        want = hamming_topk(q, c, 37, mask, use_kernel=False)
        for simd in (True, False):
            got = hamming_topk(q, c, 37, mask, simd=simd)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("use_kernel", [pytest.param(True, marks=needs_kernel), False])
def test_edges(use_kernel: bool) -> None:
    rng = np.random.default_rng(3)
    c = codes(rng, 10, 4, False)
    ids, dist = hamming_topk(c[:2], c, 0, use_kernel=use_kernel)
    assert ids.shape == (2, 0) and dist.shape == (2, 0)
    ids, dist = hamming_topk(c[:2], c[:0], 3, use_kernel=use_kernel)
    assert (ids == -1).all() and (dist == -1).all()
    ids, dist = hamming_topk(c[:2], c, 4, np.zeros(10, dtype=bool), use_kernel=use_kernel)
    assert (ids == -1).all()
    ids, dist = hamming_topk(c[:2], c, 1, use_kernel=use_kernel)  # a row is its own nearest code
    np.testing.assert_array_equal(ids[:, 0], [0, 1])
    np.testing.assert_array_equal(dist[:, 0], [0, 0])


def test_bad_input() -> None:
    c = np.zeros((4, 3), dtype=np.uint8)
    with pytest.raises(TierError):
        hamming_topk(c.astype(np.int32), c, 2)
    with pytest.raises(TierError):
        hamming_topk(np.zeros((1, 2), dtype=np.uint8), c, 2)
    with pytest.raises(TierError):
        hamming_topk(c, c, -1)
    with pytest.raises(TierError):
        hamming_topk(c, c, 2, np.ones(3, dtype=bool))
    with pytest.raises(TierError):
        hamming_topk(c, c, 2, np.ones(4, dtype=np.int64))
    with pytest.raises(TierError):
        hamming_topk(np.zeros((1, 9000), dtype=np.uint8), np.zeros((1, 9000), dtype=np.uint8), 1)


@pytest.mark.parametrize("dim", [13, 64])
@pytest.mark.parametrize("masked", [False, True])
def test_search_compressed_unchanged(dim: int, masked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((3000, dim)).astype(np.float32)
    q = rng.standard_normal((6, dim)).astype(np.float32)
    tier = BinaryTier(center=True)
    tier.fit(x)
    c = tier.encode(x)
    allowed = rng.random(3000) < 0.05 if masked else None  # 150 allowed: fewer than some candidate counts
    runs = []
    for own in (True, False):
        if not own:  # the generic chunked path: tiers without their own candidate search
            monkeypatch.setattr(tier, "candidates", lambda *a, **kw: None)
        runs.append([search_compressed(q, tier, c, k, oversample=os, rescore=r, allowed=allowed, chunk_rows=700)
                     for k, os, r in ((10, 4.0, x), (10, 1.0, None), (50, 5.0, x), (200, 1.0, None))])
    for (ids_a, s_a), (ids_b, s_b) in zip(*runs):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_array_equal(s_a, s_b)


def test_candidates_only_for_hamming_scoring() -> None:
    x = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    tier = BinaryTier(scoring="asymmetric")
    tier.fit(x)
    assert tier.candidates(x[:2], tier.encode(x), 5) is None

