"""Compressed vector tiers: exactness of the kernels, recall on seeded clustered data, persistence, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrievekit.core.errors import RetrievekitError
from retrievekit.index.dense.tiers import (
    BinaryTier,
    TierError,
    available_tiers,
    get_tier,
    hamming_distances,
    load_tier,
    pack_signs,
    save_tier,
    search_compressed,
    tier_from_state,
)

K = 10


def clustered(n: int, nq: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors from 40 clusters in a 12-d latent space mixed into d dims; queries are perturbed documents."""
    r = np.random.default_rng(seed)
    mix = r.normal(size=(12, d))
    centers = r.normal(size=(40, 12))
    x = (centers[r.integers(0, 40, n)] + 0.6 * r.normal(size=(n, 12))) @ mix + 0.3 * r.normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[r.integers(0, n, nq)] + 0.3 / np.sqrt(d) * r.normal(size=(nq, d))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


@pytest.fixture(scope="module")
def data64() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, q = clustered(20000, 50, 64)
    return x, q, np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :K]


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(found, exact, strict=True)]))


def fitted(name: str, x: np.ndarray, q: np.ndarray | None = None, **options: object):  # type: ignore[no-untyped-def]
    tier = get_tier(name, **options)
    tier.fit(x, q)
    return tier


# ---------------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("nbytes", [1, 3, 4, 6, 8, 48])
def test_hamming_matches_python_popcount(nbytes: int) -> None:
    r = np.random.default_rng(nbytes)
    a = r.integers(0, 256, size=(3, nbytes), dtype=np.uint8)
    b = r.integers(0, 256, size=(40, nbytes), dtype=np.uint8)
    got = hamming_distances(a, b)
    want = [[sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(qa, db, strict=True)) for db in b] for qa in a]
    np.testing.assert_array_equal(got, np.array(want))


def test_binary_tiny_hand_case() -> None:
    tier = BinaryTier()
    tier.fit(np.zeros((1, 8), dtype=np.float32))
    docs = np.array([[1] * 8, [-1] * 8, [1, -1] * 4], np.float32)
    codes = tier.encode(docs)
    np.testing.assert_array_equal(codes[:, 0], [0b11111111, 0, 0b10101010])
    assert tier.scores(docs[:1], codes).tolist() == [[0.0, -8.0, -4.0]]
    asym = get_tier("binary", scoring="asymmetric")
    asym.fit(docs)
    q = np.array([[1, 2, 3, 4, 5, 6, 7, 8]], np.float32)
    np.testing.assert_allclose(asym.scores(q, codes), [[36.0, -36.0, -4.0]])


def test_pack_signs_pads_odd_dimension() -> None:
    packed = pack_signs(np.array([[1.0] * 10]))
    assert packed.shape == (1, 2) and packed.tolist() == [[255, 0b11000000]]


def test_int8_scores_close_to_float(data64: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, q, _ = data64
    tier = fitted("int8", x[:5000])
    codes = tier.encode(x[:2000])
    assert codes.dtype == np.int8 and codes.shape == (2000, 64)
    err = np.abs(tier.scores(q, codes) - q @ x[:2000].T)
    assert err.mean() < 0.002 and err.max() < 0.05  # the max comes from clipped outliers


def test_multibit_popcount_matches_dequantized(data64: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, q, _ = data64
    fast = fitted("multibit:2", x[:5000])
    slow = fitted("multibit:2", x[:5000], scoring="dequantize")
    codes = fast.encode(x[:3000])
    assert codes.shape == (3000, 16)
    a, b = fast.scores(q, codes), slow.scores(q, codes)
    # Only the query weights are rounded (to 6 bits) on the popcount path.
    assert np.abs(a - b).max() < 0.05 * np.abs(b).max()
    # The dequantised path is the inner product with the decoded cell centres.
    levels = slow.levels_of(x[:3000])
    decoded = slow.lo + slow.step * (levels + 0.5)
    np.testing.assert_allclose(b, q @ decoded.T, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------- rescoring


def test_rescore_is_exact_when_candidates_cover_everything(data64: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, q, _ = data64
    xs = x[:500]
    tier = fitted("binary", xs)
    ids, scores = search_compressed(q, tier, tier.encode(xs), K, oversample=500 / K, rescore=xs)
    exact = q @ xs.T
    want = np.argsort(-exact, axis=1, kind="stable")[:, :K]
    np.testing.assert_array_equal(ids, want)
    np.testing.assert_allclose(scores, np.take_along_axis(exact, want, axis=1), rtol=1e-5)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_rescore_reads_memmap_and_chunks(tmp_path, data64: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    x, q, exact = data64
    np.save(tmp_path / "v.npy", x)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    tier = fitted("int8", x[:5000])
    codes = tier.encode(x)
    whole = search_compressed(q, tier, codes, K, oversample=4, rescore=mm)
    chunked = search_compressed(q, tier, codes, K, oversample=4, rescore=mm, chunk_rows=1500)
    np.testing.assert_array_equal(whole[0], chunked[0])
    assert recall(whole[0], exact) == 1.0


def test_allowed_mask_is_respected(data64: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, q, _ = data64
    tier = fitted("multibit:2", x[:5000])
    codes = tier.encode(x)
    allowed = np.zeros(len(x), dtype=bool)
    allowed[::7] = True
    ids, _ = search_compressed(q, tier, codes, K, oversample=10, rescore=x, allowed=allowed, chunk_rows=4096)
    assert np.all(allowed[ids])
    exact = q @ x[allowed].T
    want = np.flatnonzero(allowed)[np.argsort(-exact, axis=1)[:, :K]]
    assert recall(ids, want) >= 0.9


def test_fewer_allowed_than_k_pads() -> None:
    x = np.eye(4, dtype=np.float32)
    tier = fitted("float16", x)
    allowed = np.array([0, 1, 0, 1], dtype=np.uint8)
    ids, scores = search_compressed(x[1:2], tier, tier.encode(x), 3, rescore=x, allowed=allowed)
    assert ids.tolist() == [[1, 3, -1]]
    assert scores[0, 0] == 1.0 and scores[0, 1] == 0.0 and np.isneginf(scores[0, 2])
    none = search_compressed(x[:1], tier, tier.encode(x), 2, allowed=np.zeros(4, bool))
    assert none[0].tolist() == [[-1, -1]]


def test_ties_go_to_lower_document_number() -> None:
    x = np.ones((6, 8), dtype=np.float32)
    tier = fitted("binary", x)
    ids, _ = search_compressed(x[:1], tier, tier.encode(x), 3)
    assert ids.tolist() == [[0, 1, 2]]


# ---------------------------------------------------------------------------------------------------- recall


@pytest.mark.parametrize(
    ("name", "oversample", "rescore", "minimum"),
    [
        ("float16", 1, False, 0.99),
        ("int8", 1, False, 0.95),
        ("int8", 4, True, 0.99),
        ("multibit:2", 10, True, 0.93),
        ("pca:16", 4, True, 0.98),
        ("leanvec:16", 4, True, 0.98),
        ("pca:16+int8", 4, True, 0.98),
        ("matryoshka:64", 1, False, 0.99),
    ],
)
def test_recall_on_clustered_data(
    name: str, oversample: float, rescore: bool, minimum: float, data64: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    x, q, exact = data64
    tier = fitted(name, x[:5000], q)
    ids, _ = search_compressed(q, tier, tier.encode(x), K, oversample=oversample, rescore=x if rescore else None)
    assert recall(ids, exact) >= minimum


def test_multibit_beats_binary(data64: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, q, exact = data64
    found = {}
    for name in ("binary", "multibit:2"):
        tier = fitted(name, x[:5000])
        found[name] = recall(search_compressed(q, tier, tier.encode(x), K, oversample=10, rescore=x)[0], exact)
    assert found["multibit:2"] > found["binary"] + 0.05


@pytest.mark.parametrize("scoring", ["hamming", "asymmetric"])
def test_binary_with_rescore_recall_384(scoring: str) -> None:
    x, q = clustered(20000, 30, 256, seed=1)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :K]
    tier = fitted("binary", x, scoring=scoring)
    ids, _ = search_compressed(q, tier, tier.encode(x), K, oversample=10, rescore=x)
    assert recall(ids, exact) >= 0.9


def test_pq_with_rescore_recall(data64: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    x, q, exact = data64
    tier = fitted("pq:16", x[:4000])
    codes = tier.encode(x)
    assert codes.shape == (len(x), 16) and codes.dtype == np.uint8 and tier.bytes_per_vector() == 16
    approx = tier.scores(q[:5], codes[:200])
    assert np.abs(approx - q[:5] @ x[:200].T).mean() < 0.05
    ids, _ = search_compressed(q, tier, codes, K, oversample=10, rescore=x)
    assert recall(ids, exact) >= 0.9


def test_leanvec_ood_beats_pca_on_shifted_queries() -> None:
    # Documents vary most in one half of a rotated space, queries point into the other half: PCA keeps the
    # document-heavy directions, which barely matter for the inner products.
    r = np.random.default_rng(3)
    rot = np.linalg.qr(r.normal(size=(64, 64)))[0]
    x = ((r.normal(size=(8000, 64)) * np.r_[np.full(32, 3.0), np.ones(32)]) @ rot).astype(np.float32)
    qs = ((r.normal(size=(250, 64)) * np.r_[np.full(32, 0.1), np.ones(32)]) @ rot).astype(np.float32)
    q_fit, q_test = qs[:200], qs[200:]
    exact = np.argsort(-(q_test @ x.T), axis=1)[:, :K]
    found = {}
    for name in ("pca:32", "leanvec-ood:32"):
        tier = fitted(name, x[:4000], q_fit)
        found[name] = recall(search_compressed(q_test, tier, tier.encode(x), K)[0], exact)
    assert found["leanvec-ood:32"] > found["pca:32"] + 0.3
    combo = fitted("leanvec-ood:32+int8", x[:4000], q_fit)
    assert recall(search_compressed(q_test, combo, combo.encode(x), K, rescore=x)[0], exact) > found["pca:32"] + 0.3


def test_bytes_per_vector() -> None:
    sizes = {"float32": 1536, "float16": 768, "int8": 384, "binary": 48, "multibit:2": 96, "pca:192": 768,
             "pca:192+int8": 192, "pq:48": 48}
    for name, size in sizes.items():
        tier = get_tier(name)
        if "+" in name:
            assert tier.bytes_per_vector(384) == size
        else:
            assert tier.bytes_per_vector(384) == size, name


# ---------------------------------------------------------------------------------------------------- persistence

ALL_NAMES = ["float32", "float16", "int8", "binary", "multibit:2", "multibit:3", "pca:8", "matryoshka:8",
             "leanvec:8", "leanvec-ood:8", "pca:8+int8", "leanvec-ood:8+binary", "pq:4", "opq:4"]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_round_trip_through_config_and_state(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, q = clustered(600, 20, 16, seed=5)
    options = {"iterations": 2} if name.startswith("opq") else {}
    tier = fitted(name, x, q, **options)
    codes = tier.encode(x)
    before = tier.scores(q, codes)
    folder = save_tier(tier, tmp_path / "tier")
    manifest = json.loads((folder / "tier.json").read_text())
    assert manifest["config"]["type"] == tier.kind
    assert not list(folder.glob("*.pkl"))
    loaded = load_tier(folder)
    assert type(loaded) is type(tier) and loaded.name == tier.name
    np.testing.assert_array_equal(loaded.encode(x), codes)
    np.testing.assert_allclose(loaded.scores(q, codes), before, rtol=1e-5, atol=1e-5)
    again = tier_from_state(json.loads(json.dumps(tier.config())), tier.state())
    np.testing.assert_array_equal(again.encode(x[:5]), codes[:5])


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", ["nope", "binary:3", "pca", "pca:x", "pq:0", "multibit:9", "int8+pca:8",
                                 "pca:8+pca:4", "pca:8+int8+binary", ""])
def test_bad_names_are_clear(bad: str) -> None:
    with pytest.raises(TierError) as info:
        get_tier(bad)
    assert isinstance(info.value, RetrievekitError)
    if bad == "nope":
        assert "multibit" in str(info.value) and "leanvec-ood" in str(info.value)


def test_misuse_errors() -> None:
    x, q = clustered(300, 5, 16)
    with pytest.raises(TierError, match="not fitted"):
        get_tier("int8").encode(x)
    with pytest.raises(TierError, match="queries"):
        get_tier("leanvec-ood:4").fit(x)
    with pytest.raises(TierError, match="divisible"):
        get_tier("pq:5").fit(x)
    with pytest.raises(TierError, match="exceeds"):
        get_tier("pca:32").fit(x)
    tier = fitted("int8", x)
    with pytest.raises(TierError, match="dimension"):
        tier.scores(np.zeros((1, 8), np.float32), tier.encode(x))
    with pytest.raises(TierError, match="allowed"):
        search_compressed(q, tier, tier.encode(x), 3, allowed=np.ones(5, bool))
    with pytest.raises(TierError, match="k must"):
        search_compressed(q, tier, tier.encode(x), 0)
    with pytest.raises(TierError, match="unknown tier type"):
        tier_from_state({"type": "zzz"}, {})
    assert any(a.startswith("opq") for a in available_tiers())


def test_leanvec_ood_full_dimension_is_exact_and_round_trips(tmp_path) -> None:
    # At the full dimension the query and document maps multiply to the identity: scores are the exact products.
    r = np.random.default_rng(5)
    x = r.normal(size=(600, 12)).astype(np.float32)
    q = r.normal(size=(40, 12)).astype(np.float32)
    tier = fitted("leanvec-ood:12", x, q)
    np.testing.assert_allclose(tier.scores(q[:5], tier.encode(x)), q[:5] @ x.T, rtol=1e-3, atol=1e-3)
    save_tier(tier, tmp_path / "t")
    again = load_tier(tmp_path / "t")
    np.testing.assert_array_equal(again.scores(q[:5], again.encode(x)), tier.scores(q[:5], tier.encode(x)))
