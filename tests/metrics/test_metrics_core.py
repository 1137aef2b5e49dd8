"""Metrics and statistics against their definitions where the module tests leave room for wrong code
(found by bench/bench_mutation.py)."""

import numpy as np
import pyarrow as pa
import pytest

from dodoco.metrics.imbalance import METRICS, all_metrics, lorenz, max_mean, norm_entropy
from dodoco.metrics.schema import SCHEMA, tidy_table
from dodoco.metrics.stats import bootstrap_mean_ci, layer_mean, summarise


def test_entropy_stays_inside_zero_one_where_rounding_would_leave_it():
    one = np.zeros(54)
    one[7] = 175656.0  # log T - T log T / T rounds to -4e-16 here
    uniform = np.full(6, 7.0)  # and to 1 + 2e-16 here
    for c, want in ((one, 0.0), (uniform, 1.0)):
        assert norm_entropy(c) == want and all_metrics(c[None])["entropy"][0] == want


def test_an_expert_axis_of_one_is_allowed_and_of_none_is_not():
    c = np.array([[3], [0]])
    for name, f in METRICS.items():
        assert f(c).shape == (2,)
    assert max_mean(c)[0] == 1.0 and np.isnan(max_mean(c)[1])
    for bad in (np.zeros((2, 0)), np.array(5)):
        with pytest.raises(ValueError, match="non-empty last axis"):
            max_mean(bad)


def test_max_mean_over_another_axis_is_the_receiver_skew_of_rank_loads():
    R = np.array([[2.0, 6.0], [4.0, 0.0], [0.0, 6.0]])  # [ranks, layers]
    np.testing.assert_allclose(max_mean(R, axis=0), [4 / 2, 6 / 4])
    np.testing.assert_allclose(max_mean(R.T), [4 / 2, 6 / 4])


def test_lorenz_of_an_empty_layer_is_nan_without_warnings():
    with np.errstate(all="raise"):
        x, y = lorenz(np.array([[0, 0, 0, 0], [1, 0, 0, 3]], np.uint32))
    assert x.dtype == np.float64 and x.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert np.isnan(y[0]).sum() == 5 and y[1].tolist() == [0, 0, 0, 0.25, 1.0]


def _reference_ci(v, n_boot, seed, level=0.95):
    """The documented bootstrap: rows resampled with rng.integers(0, n, (n_boot, n)), mean per resample,
    then the (1-level)/2 and (1+level)/2 quantiles."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.shape[0], size=(n_boot, v.shape[0]))
    means = v[idx].mean(axis=1)
    a = (1 - level) / 2
    return np.quantile(means, a, axis=0), np.quantile(means, 1 - a, axis=0)


@pytest.mark.parametrize("n,level", [(2, 0.95), (3, 0.9), (17, 0.95), (40, 0.5)])
def test_bootstrap_equals_its_definition(n, level):
    v = np.random.default_rng(n).normal(size=(n, 3))
    lo, hi = bootstrap_mean_ci(v, n_boot=300, seed=5, level=level)
    want_lo, want_hi = _reference_ci(v, 300, 5, level)
    np.testing.assert_allclose(lo, want_lo, rtol=1e-12)
    np.testing.assert_allclose(hi, want_hi, rtol=1e-12)
    assert lo.shape == (3,) and hi.shape == (3,)
    lo2, hi2 = bootstrap_mean_ci(v[:, :1].reshape(n, 1, 1), n_boot=300, seed=5, level=level)
    assert lo2.shape == (1, 1) and hi2.shape == (1, 1)
    empty_lo, empty_hi = bootstrap_mean_ci(np.zeros((0, 2, 3)))
    assert empty_lo.shape == (2, 3) and np.isnan(empty_lo).all() and np.isnan(empty_hi).all()


def test_summarise_hands_its_options_to_the_bootstrap_and_keeps_exact_percentiles_with_nan():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(101, 2))
    s = summarise(v, n_boot=77, seed=9)
    lo, hi = bootstrap_mean_ci(v, n_boot=77, seed=9)
    np.testing.assert_array_equal(s["ci_lo"], lo)
    np.testing.assert_array_equal(s["ci_hi"], hi)
    w = np.arange(102.0)[:, None].repeat(2, 1)
    w[101, 0] = np.nan  # column 0: 0..100 and a NaN step
    s = summarise(w, n_boot=20)
    assert s["p50"][0] == 50.0 and s["p95"][0] == 95.0 and s["n_steps"].tolist() == [101, 102]
    with np.errstate(all="raise"):
        quiet = summarise(np.full((4, 1), np.nan), n_boot=10)
    assert np.isnan(quiet["mean"][0]) and quiet["n_steps"][0] == 0


def test_layer_mean_of_lists_and_all_nan_rows():
    assert layer_mean([[1, 2], [3, np.nan]]).tolist() == [1.5, 3.0]
    assert layer_mean([1, 2, 4]) == pytest.approx(7 / 3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(layer_mean([[np.nan, np.nan], [1.0, np.nan]])[0])


def test_tidy_table_types_and_constant_columns():
    cols = {
        "batch": np.array([1, 2]),
        "layer": np.array([-1, 0]),
        "metric": np.array(["gini", "cv"], dtype=object),
        "statistic": np.array(["mean", "p50"], dtype=object),
        "value": np.array([0.5, 0.25]),
    }
    labels = dict(model="m", condition="c", regime="prefill", seq_len=np.int64(64), ep=1, placement="none")
    t = tidy_table(cols, labels, {b"k": b"v"})
    assert t.schema.equals(SCHEMA.with_metadata({b"k": b"v"}), check_metadata=True)
    assert t.column("model").to_pylist() == ["m", "m"] and t.column("seq_len").to_pylist() == [64, 64]
    assert t.column("ep").type == pa.int64() and t.column("value").to_pylist() == [0.5, 0.25]
    assert tidy_table(cols, labels).schema.metadata in (None, {})


def test_entropy_of_fractional_loads_follows_the_definition():
    c = np.array([0.5, 1.5, 0.0, 2.0])  # a replica's share of a load is fractional
    p = c[c > 0] / c.sum()
    assert norm_entropy(c) == pytest.approx(float(-(p * np.log(p)).sum() / np.log(4)), rel=1e-12)


def test_integer_inputs_give_float_statistics():
    lo, hi = bootstrap_mean_ci(np.array([[3]]))
    assert lo.dtype == np.float64 and hi.dtype == np.float64
    s = summarise(np.array([[1, 2], [3, 4], [5, 7]]), n_boot=10)
    assert all(v.dtype == np.float64 for v in s.values())
    assert layer_mean(np.array([[1, 2]])).dtype == np.float64


def test_resamples_with_no_value_are_left_out_of_the_interval():
    v = np.array([[1.0], [np.nan], [np.nan]])  # most resamples hold only NaN rows
    lo, hi = bootstrap_mean_ci(v, n_boot=200, seed=1)
    assert lo[0] == 1.0 and hi[0] == 1.0


def test_the_bootstrap_seed_defaults_to_zero():
    v = np.random.default_rng(4).normal(size=(30, 2))
    for a, b in zip(bootstrap_mean_ci(v, n_boot=50), bootstrap_mean_ci(v, n_boot=50, seed=0)):
        np.testing.assert_array_equal(a, b)
    s, s0 = summarise(v, n_boot=50), summarise(v, n_boot=50, seed=0)
    np.testing.assert_array_equal(s["ci_lo"], s0["ci_lo"])
