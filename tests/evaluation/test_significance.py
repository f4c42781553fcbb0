"""Paired t-test, randomization test, Holm correction and the system comparison table."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
from scipy import stats

from retrievekit.evaluation import compare, holm, paired_t_test, permutation_test


@pytest.mark.parametrize(("n", "shift", "seed"), [(2, 0.1, 0), (5, 0.0, 1), (50, 0.05, 2), (300, 0.02, 3)])
def test_t_test_matches_scipy(n, shift, seed):
    rng = np.random.default_rng(seed)
    a = rng.random(n)
    b = np.clip(a - shift + rng.normal(0, 0.1, n), 0, 1)
    ours = paired_t_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_t_test_degenerate_differences():
    assert paired_t_test([0.5, 0.2, 0.9], [0.5, 0.2, 0.9]).p_value == 1.0
    shifted = paired_t_test([0.6, 0.3, 1.0], [0.5, 0.2, 0.9])
    assert shifted.p_value < 1e-10 and shifted.statistic > 0
    assert paired_t_test([0.5, 0.5], [1.0, 1.0]).statistic == -np.inf


@pytest.mark.parametrize("test", [paired_t_test, permutation_test])
def test_bad_input_is_rejected(test):
    with pytest.raises(ValueError, match="same length"):
        test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        test([1.0], [0.0])
    with pytest.raises(ValueError, match="finite"):
        test([1.0, float("nan")], [0.0, 0.0])


def exact_randomization_p(d: np.ndarray) -> float:
    """Brute force over all sign flips, written independently of the library."""
    observed = abs(d.sum())
    sums = [abs(sum(s * x for s, x in zip(signs, d))) for signs in itertools.product((1, -1), repeat=len(d))]
    return sum(1 for s in sums if s >= observed - 1e-12) / len(sums)


def test_permutation_known_cases():
    # All four differences positive: only "all +" and "all -" are as extreme -> 2 / 16.
    assert permutation_test([1, 2, 3, 4], [0, 0, 0, 0]).p_value == pytest.approx(0.125)
    assert permutation_test([0.3, 0.3], [0.3, 0.3]).p_value == 1.0
    result = permutation_test([0.2, 0.4, 0.1], [0.1, 0.1, 0.3])
    assert result.statistic == pytest.approx((0.1 + 0.3 - 0.2) / 3)


@pytest.mark.parametrize("seed", range(5))
def test_permutation_exact_enumeration_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 11))
    a, b = rng.random(n).round(2), rng.random(n).round(2)  # rounding creates ties among |sums|
    assert permutation_test(a, b).p_value == pytest.approx(exact_randomization_p(a - b), abs=1e-12)


def test_permutation_sampling_is_close_to_exact_and_reproducible():
    rng = np.random.default_rng(7)
    b = rng.random(16)
    a = b + rng.normal(0.05, 0.25, 16)
    exact = exact_randomization_p(a - b)
    assert 0.01 < exact < 0.9  # a case where sampling error is visible
    sampled = permutation_test(a, b, n_permutations=20_000, seed=3)  # 2**16 > 20,000: sampled
    assert abs(sampled.p_value - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000) + 1e-4
    assert permutation_test(a, b, n_permutations=20_000, seed=3) == sampled
    many = rng.random(2000)
    # Thousands of queries: blocks of sign matrices, and a p that never reaches 0.
    strong = permutation_test(many + 0.05, many + rng.normal(0, 0.01, 2000), n_permutations=1000)
    assert strong.p_value == pytest.approx(1 / 1001)


def test_permutation_agrees_roughly_with_t_test_on_many_queries():
    rng = np.random.default_rng(11)
    a = rng.random(200)
    b = np.clip(a - 0.02 + rng.normal(0, 0.15, 200), 0, 1)
    t = paired_t_test(a, b).p_value
    p = permutation_test(a, b).p_value
    assert abs(t - p) < 0.03


def test_holm_known_values_and_validation():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == pytest.approx([0.02])
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])


def _systems():
    rng = np.random.default_rng(5)
    qids = [f"q{i}" for i in range(60)]
    base = rng.random(60)
    return {
        "bm25": dict(zip(qids, base)),
        "same": dict(zip(qids, np.clip(base + rng.normal(0, 0.05, 60), 0, 1))),
        "better": dict(zip(qids, np.clip(base + 0.15 + rng.normal(0, 0.05, 60), 0, 1))),
    }


def test_compare_t_test_table():
    systems = _systems()
    table = compare(systems, baseline="bm25")
    assert list(table) == ["bm25", "same", "better"]
    base = table["bm25"]
    assert base.p_value is None and base.delta == 0.0 and not base.significant
    ref = {name: stats.ttest_rel(list(systems[name].values()), list(systems["bm25"].values())).pvalue
           for name in ("same", "better")}
    corrected = holm([ref["same"], ref["better"]])
    for name, p_corr in zip(("same", "better"), corrected):
        row = table[name]
        assert row.p_value == pytest.approx(ref[name], rel=1e-9)
        assert row.p_corrected == pytest.approx(p_corr, rel=1e-9)
        assert row.mean == pytest.approx(np.mean(list(systems[name].values())))
        assert row.delta == pytest.approx(row.mean - base.mean)
    assert table["better"].significant and not table["same"].significant


def test_compare_aligns_queries_and_supports_permutation(caplog):
    systems = _systems()
    systems["better"] = {q: v for q, v in systems["better"].items() if q != "q0"}
    systems["extra"] = {**systems["bm25"], "only-here": 1.0}
    with caplog.at_level(logging.WARNING):
        table = compare(systems, baseline="bm25", test="permutation", n_permutations=2000)
    assert "2 queries are missing" in caplog.text
    kept = [f"q{i}" for i in range(1, 60)]
    assert table["bm25"].mean == pytest.approx(np.mean([systems["bm25"][q] for q in kept]))
    assert table["extra"].p_value == 1.0 and table["extra"].delta == 0.0
    assert table["better"].p_value == pytest.approx(1 / 2001) and table["better"].significant


def test_compare_rejects_bad_arguments():
    systems = _systems()
    with pytest.raises(KeyError, match="baseline 'nope'"):
        compare(systems, baseline="nope")
    with pytest.raises(ValueError, match="test must be"):
        compare(systems, baseline="bm25", test="wilcoxon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2 queries"):
        compare({"a": {"q": 1.0}, "b": {"q": 0.0}}, baseline="a")
