"""Bootstrap intervals and summaries over steps (steps themselves: tests/ep/test_steps.py)."""

import numpy as np
import pytest

from dodoco.metrics import bootstrap_mean_ci, summarise


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
    assert list(s) == ["mean", "p50", "p95", "ci_lo", "ci_hi", "n_steps"]
    np.testing.assert_array_equal(s["n_steps"], [101, 101])
    np.testing.assert_allclose(s["mean"], [50, 100])
    np.testing.assert_allclose(s["p50"], [50, 100])
    np.testing.assert_allclose(s["p95"], [95, 190])
    assert np.all(s["ci_lo"] < s["mean"]) and np.all(s["mean"] < s["ci_hi"])
    v[3, 0] = np.nan
    s = summarise(v, n_boot=50)
    assert np.isfinite(s["p95"][0])
    np.testing.assert_array_equal(s["n_steps"], [100, 101])  # the NaN step is not counted
