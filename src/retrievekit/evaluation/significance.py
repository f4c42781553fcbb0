"""Paired significance tests for comparing systems on the same queries, with Holm's correction.

Both tests are two-sided and work on per-query differences ``a - b``:

* ``paired_t_test``: Student's paired t-test (same numbers as ``scipy.stats.ttest_rel``). When every
  difference is the same, scipy gives NaN; here identical systems give ``p = 1`` and a constant
  non-zero difference gives ``p = 0``, which is what a comparison table needs.
* ``permutation_test``: the paired randomization test of IR practice (Smucker et al., CIKM 2007):
  under the null hypothesis each difference is equally likely to have either sign, so the p-value is
  the share of sign flips whose mean difference is at least as far from 0 as the observed one. With
  ``2**n <= n_permutations`` every flip is enumerated (an exact p-value); otherwise ``n_permutations``
  random flips are drawn from a fixed seed and ``p = (hits + 1) / (n_permutations + 1)``, which
  counts the observed assignment and so never reports an impossible ``p = 0``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

# Random sign matrices are built in blocks of at most this many entries (float64: 32 MiB).
_BLOCK_ENTRIES = 1 << 22


@dataclass(frozen=True)
class TestResult:
    """Outcome of a paired test: the statistic (t, or the mean difference) and its two-sided p-value."""

    statistic: float
    p_value: float

    __test__ = False  # not a pytest test class, despite the name


def _differences(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"paired tests need two 1-d samples of the same length, got shapes "
                         f"{x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError(f"paired tests need at least 2 paired values, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired tests need finite values; found NaN or infinity")
    return x - y


def paired_t_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> TestResult:
    """Two-sided paired t-test of mean(a - b) = 0."""
    d = _differences(a, b)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return TestResult(0.0, 1.0) if mean == 0.0 else TestResult(float(np.copysign(np.inf, mean)), 0.0)
    from scipy.special import stdtr  # Student's t CDF; imported here to keep package import light

    t = mean / (sd / np.sqrt(d.size))
    return TestResult(float(t), float(2.0 * stdtr(d.size - 1, -abs(t))))


def permutation_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
                     n_permutations: int = 10_000, seed: int = 0) -> TestResult:
    """Two-sided paired randomization test of mean(a - b) = 0 (see the module docstring)."""
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be at least 1, got {n_permutations}")
    d = _differences(a, b)
    n = d.size
    observed = abs(float(d.sum()))
    # Sums of the same numbers in another order can differ in the last bits; such a sum must still
    # count as "as extreme as observed", so compare with a tolerance far above rounding error.
    threshold = observed - 1e-9 * float(np.abs(d).sum())
    if n < 63 and 2**n <= n_permutations:
        codes = np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n, dtype=np.int64)
        signs = 1.0 - 2.0 * (codes & 1)
        hits = int(np.count_nonzero(np.abs(signs @ d) >= threshold))
        p = hits / 2**n
    else:
        rng = np.random.default_rng(seed)
        rows = max(1, _BLOCK_ENTRIES // n)
        hits, done = 0, 0
        while done < n_permutations:
            m = min(rows, n_permutations - done)
            signs = 1.0 - 2.0 * rng.integers(0, 2, size=(m, n), dtype=np.int8)
            hits += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
            done += m
        p = (hits + 1) / (n_permutations + 1)
    return TestResult(float(d.mean()), min(1.0, p))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (reject where adjusted p < alpha)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("holm() takes a flat sequence of p-values")
    if p.size and (np.isnan(p).any() or p.min() < 0.0 or p.max() > 1.0):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


@dataclass(frozen=True)
class Comparison:
    """One system against the baseline. The baseline's own row has no p-values."""

    system: str
    mean: float
    delta: float  # mean - baseline mean
    p_value: float | None
    p_corrected: float | None  # Holm-corrected over all systems compared with the baseline
    significant: bool  # p_corrected < alpha


def compare(per_query: Mapping[str, Mapping[str, float]], baseline: str,
            test: Literal["t", "permutation"] = "t", alpha: float = 0.05, *,
            n_permutations: int = 10_000, seed: int = 0) -> dict[str, Comparison]:
    """Compare every system with ``baseline`` on one metric's per-query values.

    ``per_query`` is ``{system: {qid: value}}`` (e.g. ``evaluate(..., per_query=True).per_query[m]``
    for each system). Only queries that every system has are used, so all means are over the same
    queries; dropped queries are logged. Rows come back in the input order, the baseline included.
    """
    if baseline not in per_query:
        raise KeyError(f"baseline {baseline!r} is not among the systems: {sorted(per_query)}")
    if test not in ("t", "permutation"):
        raise ValueError(f"test must be 't' or 'permutation', got {test!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    qids = [q for q in per_query[baseline] if all(q in values for values in per_query.values())]
    dropped = len(set().union(*per_query.values())) - len(qids)
    if dropped:
        logger.warning("%d queries are missing from some system and are left out of the comparison",
                       dropped)
    if len(qids) < 2:
        raise ValueError(f"need at least 2 queries shared by all systems, found {len(qids)}")

    matrix = {name: np.array([values[q] for q in qids], dtype=np.float64)
              for name, values in per_query.items()}
    base = matrix[baseline]
    others = [name for name in matrix if name != baseline]
    p_values = []
    for name in others:
        if test == "t":
            p_values.append(paired_t_test(matrix[name], base).p_value)
        else:
            p_values.append(permutation_test(matrix[name], base, n_permutations=n_permutations,
                                             seed=seed).p_value)
    corrected = dict(zip(others, holm(p_values)))
    raw = dict(zip(others, p_values))

    rows: dict[str, Comparison] = {}
    for name, values in matrix.items():
        mean = float(values.mean())
        delta = mean - float(base.mean())
        if name == baseline:
            rows[name] = Comparison(name, mean, 0.0, None, None, False)
        else:
            rows[name] = Comparison(name, mean, delta, raw[name], corrected[name], corrected[name] < alpha)
    return rows
