"""Steps (seeded order, per-step sums), bootstrap intervals and summaries over steps."""

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.metrics import bootstrap_mean_ci, step_counts, step_order, summarise


def test_step_order_is_seeded_permutation():
    np.testing.assert_array_equal(step_order(10, 3), np.random.default_rng(3).permutation(10))
    assert sorted(step_order(10, 3)) == list(range(10))
    assert not np.array_equal(step_order(50, 0), step_order(50, 1))
    np.testing.assert_array_equal(step_order(5, 0), [2, 4, 3, 0, 1])  # docs/metrics.md example


def test_step_counts_sums_and_drops_remainder():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 100, size=(11, 3, 5)).astype(np.uint32)
    st = step_counts(counts, 4)
    assert st.shape == (2, 3, 5) and st.dtype == np.int64
    np.testing.assert_array_equal(st[0], counts[:4].sum(0))
    np.testing.assert_array_equal(st[1], counts[4:8].sum(0))
    assert st.sum() == counts[:8].sum()  # total preserved, remainder (3 sequences) dropped
    assert step_counts(counts, 1).sum() == counts.sum()


def test_step_counts_respects_order():
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 100, size=(6, 2, 3))
    order = np.array([5, 0, 3, 1, 4, 2])
    st = step_counts(counts, 2, order)
    for k in range(3):
        np.testing.assert_array_equal(st[k], counts[order[2 * k]] + counts[order[2 * k + 1]])


def test_docs_worked_example_steps():
    counts = np.array([[3, 1], [0, 4], [2, 2], [4, 0], [1, 3]])[:, None, :]  # [S=5, L=1, E=2]
    st = step_counts(counts, 2, step_order(5, 0))
    np.testing.assert_array_equal(st[:, 0], [[3, 5], [7, 1]])  # s2+s4, s3+s0; s1 dropped


def test_too_few_sequences_names_both_numbers():
    with pytest.raises(DodocoError, match=r"32 sequences.*S=10") as e:
        step_counts(np.zeros((10, 2, 4)), 32)
    assert "\n" not in str(e.value)


def test_bootstrap_contains_mean_and_shrinks():
    rng = np.random.default_rng(0)
    small = rng.normal(1.0, 1.0, size=(30, 3))
    big = rng.normal(1.0, 1.0, size=(3000, 3))
    lo_s, hi_s = bootstrap_mean_ci(small)
    lo_b, hi_b = bootstrap_mean_ci(big)
    assert lo_s.shape == (3,)
    assert np.all(lo_s < small.mean(0)) and np.all(small.mean(0) < hi_s)
    assert np.all(lo_b < big.mean(0)) and np.all(big.mean(0) < hi_b)
    assert np.all(hi_b - lo_b < (hi_s - lo_s) / 3)  # ~ 1/sqrt(100) = 1/10 as wide
    # the 95% interval width is about 2 * 1.96 * sigma / sqrt(n)
    np.testing.assert_allclose(hi_b - lo_b, 2 * 1.96 / np.sqrt(3000), rtol=0.15)


def test_bootstrap_seeded_and_edge_cases():
    v = np.arange(20.0).reshape(10, 2)
    a, b = bootstrap_mean_ci(v, seed=4), bootstrap_mean_ci(v, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    lo, hi = bootstrap_mean_ci(np.array([[2.5, 3.0]]))
    np.testing.assert_array_equal(lo, [2.5, 3.0])
    np.testing.assert_array_equal(hi, [2.5, 3.0])
    lo, hi = bootstrap_mean_ci(np.full(5, 7.0))
    assert lo == pytest.approx(7.0) and hi == pytest.approx(7.0)


def test_bootstrap_ignores_nan():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(200, 2))
    w = v.copy()
    w[::10, 0] = np.nan
    w[:, 1] = np.nan
    with np.errstate(all="raise"):
        lo, hi = bootstrap_mean_ci(w)
    kept = v[np.isfinite(w[:, 0]), 0]
    assert lo[0] < kept.mean() < hi[0]
    assert np.isnan(lo[1]) and np.isnan(hi[1])


def test_summarise():
    v = np.arange(101.0)[:, None] * np.array([1.0, 2.0])  # [101, 2]
    s = summarise(v, n_boot=200)
    assert list(s) == ["mean", "p50", "p95", "ci_lo", "ci_hi"]
    np.testing.assert_allclose(s["mean"], [50, 100])
    np.testing.assert_allclose(s["p50"], [50, 100])
    np.testing.assert_allclose(s["p95"], [95, 190])
    assert np.all(s["ci_lo"] < s["mean"]) and np.all(s["mean"] < s["ci_hi"])
    v[3, 0] = np.nan
    assert np.isfinite(summarise(v, n_boot=50)["p95"][0])
