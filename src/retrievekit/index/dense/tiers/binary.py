"""Bit tiers: 1-bit sign codes scored by Hamming distance, and b-bit codes stored as bit planes.

Hamming distance is XOR + popcount on 64-bit words (``np.bitwise_count``, numpy >= 2; a byte lookup table
otherwise), over document chunks small enough that the XOR temporary stays in cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrievekit.index.dense.tiers.base import TierError, VectorTier, as_matrix, register_tier

__all__ = ["BinaryTier", "MultiBitTier", "hamming_distances", "pack_signs"]

CHUNK_ROWS = 16384
_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")
_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
# Optimal uniform-quantiser step for a unit Gaussian with 2, 4, 8, 16 levels (Max, 1960): the multi-bit range is
# mean ± levels/2 * step * std, which beats percentile clipping for the few levels used here.
_GAUSS_STEP = {1: 1.596, 2: 0.9957, 3: 0.5860, 4: 0.3352}


def _words(packed: np.ndarray) -> np.ndarray:
    """A zero-copy view of packed bytes (n, B) as the widest unsigned word that divides B."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    width = packed.shape[1]
    for dtype, size in ((np.uint64, 8), (np.uint32, 4), (np.uint16, 2)):
        if width % size == 0 and width:
            return packed.view(dtype)
    return packed


def _popcount_sum(words: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Row sums of set bits of ``words`` (n, W) into ``out`` (n,)."""
    # numpy < 2 has no bitwise_count: per-byte table (more columns, same row sums).
    counts = np.bitwise_count(words) if _HAS_BITWISE_COUNT else _BYTE_POPCOUNT[words.view(np.uint8)]
    if counts.shape[1] == 1:
        np.copyto(out, counts[:, 0], casting="unsafe")
        return out
    # Adding columns in a uint16 accumulator is ~2x faster than sum(axis=1) over the short word axis.
    acc = np.add(counts[:, 0], counts[:, 1], dtype=np.uint16)
    for col in range(2, counts.shape[1]):
        np.add(acc, counts[:, col], out=acc)
    np.copyto(out, acc, casting="unsafe")
    return out


def hamming_distances(query_bits: np.ndarray, code_bits: np.ndarray) -> np.ndarray:
    """int32 (m, n) Hamming distances between packed bit rows (m, B) and (n, B) (uint8, as from np.packbits)."""
    q = np.ascontiguousarray(query_bits, dtype=np.uint8)
    c = np.ascontiguousarray(code_bits, dtype=np.uint8)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise TierError(f"packed bits must be 2-d with equal widths, got {q.shape} and {c.shape}")
    qw, cw = _words(q), _words(c)
    out = np.empty((q.shape[0], c.shape[0]), dtype=np.int32)
    for start in range(0, c.shape[0], CHUNK_ROWS):
        block = cw[start:start + CHUNK_ROWS]
        tmp = np.empty_like(block)
        for i in range(q.shape[0]):
            np.bitwise_xor(block, qw[i], out=tmp)
            _popcount_sum(tmp, out[i, start:start + block.shape[0]])
    return out


def pack_signs(vectors: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Bit j of a row is 1 where the value exceeds its threshold (0 by default); packed to uint8 (n, ceil(d/8))."""
    x = np.asarray(vectors, dtype=np.float32)
    bits = x > (0.0 if thresholds is None else thresholds)
    return np.packbits(bits, axis=1)


class BinaryTier(VectorTier):
    """One bit per dimension: the sign of each value (of value − per-dimension median with ``center=True``).

    ``scoring="hamming"`` (default): score = −Hamming(sign bits of query, code), pure XOR/popcount.
    ``scoring="asymmetric"``: score = q · (±1 code), the float query against unpacked signs: better candidates
    for the same storage, at float-matmul cost. ``center=True`` helps embeddings whose dimensions are not centred
    around 0 (common for real sentence embeddings); it learns the medians in ``fit``.
    """

    kind = "binary"

    def __init__(self, scoring: str = "hamming", center: bool = False) -> None:
        super().__init__()
        if scoring not in ("hamming", "asymmetric"):
            raise TierError(f"binary scoring must be 'hamming' or 'asymmetric', got {scoring!r}")
        self.name = self.kind
        self.scoring = scoring
        self.center = bool(center)
        self.thresholds = np.zeros(0, dtype=np.float32)

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = as_matrix(sample, "sample")
        if self.center and x.shape[0] == 0:
            raise TierError("binary with center=True needs a non-empty sample")
        self.thresholds = (np.median(x, axis=0) if self.center else np.zeros(x.shape[1])).astype(np.float32)
        self.dim = x.shape[1]

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        return pack_signs(as_matrix(vectors, "vectors", self._require_fitted()), self.thresholds)

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        dim = self._require_fitted()
        q = as_matrix(queries, "queries", dim)
        if self.scoring == "hamming":
            return -hamming_distances(pack_signs(q, self.thresholds), codes).astype(np.float32)
        # q · (2b − 1) = 2 q · b − sum(q)
        out = np.empty((q.shape[0], codes.shape[0]), dtype=np.float32)
        total = q.sum(axis=1, keepdims=True)
        for start in range(0, codes.shape[0], CHUNK_ROWS):
            bits = np.unpackbits(np.asarray(codes[start:start + CHUNK_ROWS]), axis=1, count=dim)
            out[:, start:start + bits.shape[0]] = 2.0 * (q @ bits.T.astype(np.float32)) - total
        return out

    def candidates(self, queries: np.ndarray, codes: np.ndarray, n_candidates: int,
                   allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``n_candidates`` best codes per query: (ids int64, scores float32 = −Hamming), best first, ties to
        the lower document, padded with -1 / -inf; the same as ranking ``scores`` but without materialising them.
        None with asymmetric scoring (the caller then ranks ``scores``)."""
        if self.scoring != "hamming":
            return None
        from retrievekit.index.dense.tiers.hamming import hamming_topk  # hamming imports this module

        q = as_matrix(queries, "queries", self._require_fitted())
        ids, dist = hamming_topk(pack_signs(q, self.thresholds), codes, n_candidates, allowed)
        scores = np.where(ids < 0, np.float32(-np.inf), -dist.astype(np.float32)).astype(np.float32)
        return ids, scores

    def bytes_per_vector(self, dim: int | None = None) -> float:
        return float(-(-self._dim_arg(dim) // 8))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "scoring": self.scoring, "center": self.center}

    def state(self) -> dict[str, np.ndarray]:
        return {"thresholds": self.thresholds}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(scoring=config["scoring"], center=config["center"])
        tier.thresholds = np.asarray(state["thresholds"], dtype=np.float32)
        tier.dim = config["dim"]
        return tier


class MultiBitTier(VectorTier):
    """``bits`` bits per dimension: uniform per-dimension quantisation into 2**bits levels, stored as bit planes.

    Dimension j is quantised on [mean_j − h_j, mean_j + h_j], with h_j from the Gaussian-optimal step for that
    many levels times the sample std (outliers clip to the end levels); a level l decodes to the centre of its
    cell, ``lo_j + step_j * (l + 0.5)``. Codes are ``bits`` packed planes side by side (plane p = bit p of each
    level): the row is bits × ceil(dim/8) bytes.

    ``scoring="popcount"`` (default): the query weights ``q * step`` are themselves quantised per query to
    ``query_bits`` uniform levels W, and Σ_j W_j l_j = Σ_{p,r} 2^(p+r) popcount(Wplane_r AND plane_p): bits ×
    query_bits AND/popcount passes, no float conversion of the codes. ``scoring="dequantize"``: exact
    q · decoded(code) with a float matmul per chunk (slower, no query rounding).
    """

    kind = "multibit"

    def __init__(self, bits: int = 2, scoring: str = "popcount", query_bits: int = 6) -> None:
        super().__init__()
        if bits not in _GAUSS_STEP:
            raise TierError(f"multibit supports {sorted(_GAUSS_STEP)} bits per dimension, got {bits!r}")
        if scoring not in ("popcount", "dequantize"):
            raise TierError(f"multibit scoring must be 'popcount' or 'dequantize', got {scoring!r}")
        if not 1 <= int(query_bits) <= 8:
            raise TierError(f"multibit query_bits must be in 1..8, got {query_bits!r}")
        self.bits, self.scoring, self.query_bits = int(bits), scoring, int(query_bits)
        self.name = f"multibit:{self.bits}"
        self.lo = np.zeros(0, dtype=np.float32)
        self.step = np.zeros(0, dtype=np.float32)

    @property
    def levels(self) -> int:
        return 1 << self.bits

    def fit(self, sample: np.ndarray, queries: np.ndarray | None = None) -> None:
        x = as_matrix(sample, "sample")
        if x.shape[0] == 0:
            raise TierError("multibit needs a non-empty sample to calibrate its ranges")
        mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-12)
        step = _GAUSS_STEP[self.bits] * std
        self.lo = (mean - step * self.levels / 2).astype(np.float32)
        self.step = step.astype(np.float32)
        self.dim = x.shape[1]

    def levels_of(self, vectors: np.ndarray) -> np.ndarray:
        """uint8 (n, dim) quantisation level of each value."""
        x = as_matrix(vectors, "vectors", self._require_fitted())
        return np.clip(np.floor((x - self.lo) / self.step), 0, self.levels - 1).astype(np.uint8)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        lv = self.levels_of(vectors)
        return np.concatenate([np.packbits((lv >> p) & 1, axis=1) for p in range(self.bits)], axis=1)

    def _planes(self, codes: np.ndarray) -> list[np.ndarray]:
        dim = self._require_fitted()
        width = -(-dim // 8)
        if codes.ndim != 2 or codes.shape[1] != width * self.bits:
            raise TierError(f"{self.name} codes must have {width * self.bits} bytes per row, got shape {codes.shape}")
        return [codes[:, p * width:(p + 1) * width] for p in range(self.bits)]

    def scores(self, queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
        dim = self._require_fitted()
        q = as_matrix(queries, "queries", dim)
        codes = np.asarray(codes)
        planes = self._planes(codes)
        weights = q * self.step
        bias = q @ (self.lo + 0.5 * self.step)
        out = np.empty((q.shape[0], codes.shape[0]), dtype=np.float32)
        if self.scoring == "dequantize":
            for start in range(0, codes.shape[0], CHUNK_ROWS):
                level = np.zeros((min(CHUNK_ROWS, codes.shape[0] - start), dim), dtype=np.float32)
                for p, pl in enumerate(planes):
                    level += np.unpackbits(pl[start:start + CHUNK_ROWS], axis=1, count=dim) * np.float32(1 << p)
                out[:, start:start + level.shape[0]] = weights @ level.T
            return out + bias[:, None]
        return self._popcount_scores(weights, planes, out) + bias[:, None]

    def _popcount_scores(self, weights: np.ndarray, planes: list[np.ndarray], out: np.ndarray) -> np.ndarray:
        qlevels = (1 << self.query_bits) - 1
        wmin = weights.min(axis=1)
        wstep = np.maximum(weights.max(axis=1) - wmin, 1e-30) / qlevels
        wq = np.rint((weights - wmin[:, None]) / wstep[:, None]).astype(np.uint8)
        qplanes = [_words(np.packbits((wq >> r) & 1, axis=1)) for r in range(self.query_bits)]
        n = out.shape[1]
        count = np.empty(min(n, CHUNK_ROWS), dtype=np.int32)
        for start in range(0, n, CHUNK_ROWS):
            blocks = [_words(pl[start:start + CHUNK_ROWS]) for pl in planes]
            rows = blocks[0].shape[0]
            tmp = np.empty_like(blocks[0])
            cnt = count[:rows]
            # Σ_j l_j (the level sum of each document) for the wmin term, shared by all queries.
            level_sum = np.zeros(rows, dtype=np.float32)
            for p, blk in enumerate(blocks):
                level_sum += _popcount_sum(blk, cnt) * float(1 << p)
            for i in range(weights.shape[0]):
                acc = np.zeros(rows, dtype=np.float32)
                for r, qp in enumerate(qplanes):
                    for p, blk in enumerate(blocks):
                        np.bitwise_and(blk, qp[i], out=tmp)
                        acc += _popcount_sum(tmp, cnt) * float(1 << (p + r))
                out[i, start:start + rows] = wstep[i] * acc + wmin[i] * level_sum
        return out

    def bytes_per_vector(self, dim: int | None = None) -> float:
        return float(self.bits * -(-self._dim_arg(dim) // 8))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "bits": self.bits, "scoring": self.scoring, "query_bits": self.query_bits}

    def state(self) -> dict[str, np.ndarray]:
        return {"lo": self.lo, "step": self.step}

    @classmethod
    def from_state(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> VectorTier:
        tier = cls(bits=config["bits"], scoring=config["scoring"], query_bits=config["query_bits"])
        tier.lo = np.asarray(state["lo"], dtype=np.float32)
        tier.step = np.asarray(state["step"], dtype=np.float32)
        tier.dim = config["dim"]
        return tier


def _binary_factory(arg: str | None, **options: Any) -> VectorTier:
    if arg is not None:
        raise TierError(f"tier 'binary' takes no ':' argument, got 'binary:{arg}' (did you mean 'multibit:{arg}'?)")
    return BinaryTier(**options)


def _multibit_factory(arg: str | None, **options: Any) -> VectorTier:
    try:
        bits = int(arg) if arg is not None else 2
    except ValueError:
        raise TierError(f"multibit:<bits> needs an integer number of bits, got {arg!r}") from None
    return MultiBitTier(bits=bits, **options)


register_tier("binary", _binary_factory, BinaryTier, "binary")
register_tier("multibit", _multibit_factory, MultiBitTier, "multibit:<bits 1-4>")
