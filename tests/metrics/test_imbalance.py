"""Imbalance metrics pinned on hand-computed cases (docs/metrics.md, worked example)."""

import math

import numpy as np
import pytest

from dodoco.metrics import METRICS, all_metrics, cv, gini, hot_count, hot_share, lorenz, max_mean, norm_entropy


def test_metric_names_and_order():
    assert list(METRICS) == ["gini", "max_mean", "cv", "entropy", "hot_share"]


def test_one_expert_takes_all():
    c = np.array([0, 0, 0, 4])
    # sorted [0,0,0,4], weights 2i-5 = -3,-1,1,3 -> 3*4 = 12; G = 12 / (4*4) = 0.75 = (E-1)/E
    assert gini(c) == pytest.approx(0.75)
    assert max_mean(c) == pytest.approx(4.0)  # 4 / mean 1
    # deviations from mean 1: -1,-1,-1,3 -> var = (1+1+1+9)/4 = 3 -> std/mean = sqrt(3)
    assert cv(c) == pytest.approx(math.sqrt(3))
    assert norm_entropy(c) == pytest.approx(0.0, abs=1e-15)
    assert hot_share(c) == pytest.approx(1.0)  # E=4 -> top ceil(0.4) = 1 expert holds all


def test_balanced():
    c = np.array([1, 1, 1, 1])
    assert gini(c) == 0.0
    assert max_mean(c) == 1.0
    assert cv(c) == 0.0
    assert norm_entropy(c) == pytest.approx(1.0)
    assert hot_share(c) == pytest.approx(0.25)


def test_worked_example_1234():
    c = np.array([1, 2, 3, 4])  # sum 10, mean 2.5
    # sum_i (2i-5) c_(i) = (-3)(1) + (-1)(2) + (1)(3) + (3)(4) = -3 - 2 + 3 + 12 = 10
    # G = 10 / (E * sum c) = 10 / (4 * 10) = 0.25
    assert gini(c) == pytest.approx(0.25, rel=1e-12)
    assert max_mean(c) == pytest.approx(1.6, rel=1e-12)  # 4 / 2.5
    # deviations -1.5,-0.5,0.5,1.5 -> var = (2.25+0.25+0.25+2.25)/4 = 1.25; cv = sqrt(1.25)/2.5
    assert cv(c) == pytest.approx(math.sqrt(0.2), rel=1e-12)
    p = np.array([0.1, 0.2, 0.3, 0.4])
    assert norm_entropy(c) == pytest.approx(-(p * np.log(p)).sum() / math.log(4), rel=1e-12)
    assert norm_entropy(c) == pytest.approx(0.92321967, rel=1e-8)
    assert hot_share(c) == pytest.approx(0.4, rel=1e-12)  # top 1 of 4: 4 / 10


def _gini_mad(c):
    c = np.asarray(c, dtype=float)
    E = c.size
    return np.abs(c[:, None] - c[None, :]).sum() / (2 * E**2 * c.mean())


@pytest.mark.parametrize("E", [2, 5, 60, 128])
def test_gini_equals_mean_absolute_difference(E):
    rng = np.random.default_rng(E)
    for _ in range(5):
        c = rng.integers(0, 1000, size=E)
        assert gini(c) == pytest.approx(_gini_mad(c), rel=1e-12)
        f = rng.random(E) ** 3
        assert gini(f) == pytest.approx(_gini_mad(f), rel=1e-12)


def test_entropy_uniform_is_one():
    for E in (2, 7, 128):
        assert norm_entropy(np.full(E, 13)) == pytest.approx(1.0, rel=1e-12)


def test_hot_count_and_share_e128():
    assert hot_count(128) == 13
    assert hot_count(4) == 1 and hot_count(10) == 1 and hot_count(11) == 2
    c = np.arange(128)  # top 13 are 115..127
    assert hot_share(c) == pytest.approx(np.arange(115, 128).sum() / c.sum(), rel=1e-12)


def test_empty_layer_is_nan_without_warnings():
    c = np.zeros((2, 4), dtype=np.uint32)
    c[1] = [1, 2, 3, 4]
    with np.errstate(all="raise"):
        m = all_metrics(c)
        singles = {name: f(c) for name, f in METRICS.items()}
    for name in METRICS:
        assert np.isnan(m[name][0]) and np.isnan(singles[name][0])
        assert np.isfinite(m[name][1])


@pytest.mark.parametrize("dtype", [np.uint32, np.int64, np.uint16, np.float32, np.float64])
def test_batched_matches_per_vector_and_all_metrics(dtype):
    rng = np.random.default_rng(0)
    c = rng.integers(0, 200, size=(3, 4, 16)).astype(dtype)
    c[0, 0] = 0
    batch = all_metrics(c, threads=2)
    for name, f in METRICS.items():
        single = f(c)
        assert single.shape == (3, 4) and single.dtype == np.float64
        loop = np.array([[f(c[i, j]) for j in range(4)] for i in range(3)])
        np.testing.assert_allclose(single, loop, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(batch[name], loop, rtol=1e-9, equal_nan=True)


def test_all_metrics_chunked_matches_single_functions():
    rng = np.random.default_rng(3)
    c = rng.poisson(rng.dirichlet(np.full(64, 0.3), size=(3000,)) * 500).astype(np.uint32)
    m = all_metrics(c)  # several chunks, threaded
    for name, f in METRICS.items():
        np.testing.assert_allclose(m[name], f(c), rtol=1e-9, equal_nan=True)


def test_large_int64_counts_sorted_exactly():
    c = np.array([[2**40, 1, 2**33, 7]], dtype=np.int64)  # too big for the uint32 fast path
    np.testing.assert_allclose(gini(c), _gini_mad(c[0]), rtol=1e-12)
    np.testing.assert_allclose(all_metrics(c)["gini"], _gini_mad(c[0]), rtol=1e-12)


def test_lorenz():
    x, y = lorenz(np.array([4, 0, 0, 0]))
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(y, [0, 0, 0, 0, 1])
    rng = np.random.default_rng(5)
    c = rng.integers(0, 100, size=(3, 10))
    x, y = lorenz(c)
    assert y.shape == (3, 11)
    # area between diagonal and curve (trapezoids) = G / 2
    area = 0.5 - ((y[:, 1:] + y[:, :-1]) / 2).sum(axis=1) / 10
    np.testing.assert_allclose(2 * area, gini(c), rtol=1e-12)
