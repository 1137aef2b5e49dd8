"""Mock vs real: per-step Gini, the batch-size slope and its interval, the verdict, bad input."""

import numpy as np
import pytest

from dodoco.ep.steps import step_order
from dodoco.errors import DodocoError
from dodoco.findings import GiniSeries, batch_trend, mock_vs_real, step_gini
from dodoco.metrics import gini


def step_counts(counts, P, order):
    """Independent step sums: counts in ``order``, consecutive groups of P, remainder dropped."""
    n = len(order) // P
    return counts[order][: n * P].astype(np.int64).reshape((n, P) + counts.shape[1:]).sum(1)


def test_step_gini_matches_step_counts_and_gini():
    rng = np.random.default_rng(3)
    counts = rng.poisson(2, size=(40, 3, 16)).astype(np.uint32)
    counts[5, 1] = 0  # an empty layer in one sequence: ignored in the layer mean
    got = step_gini(counts, (1, 2, 4, 8, 64), seed=7)
    assert sorted(got) == [1, 2, 4, 8]  # 64 > S is left out
    for B, v in got.items():
        g = gini(step_counts(counts, B, step_order(40, 7)))
        np.testing.assert_allclose(v, np.nanmean(g, axis=1), rtol=1e-12)


def test_slope_on_hand_values():
    t = batch_trend({1: [0.5, 0.5, 0.5], 2: [0.4, 0.4, 0.4], 4: [0.3, 0.3, 0.3]})
    assert t["slope"] == pytest.approx(-0.1)
    assert t["slope_lo"] == pytest.approx(-0.1) and t["slope_hi"] == pytest.approx(-0.1)
    assert t["significant"]
    flat = batch_trend({1: [0.2, 0.4, 0.3], 2: [0.3, 0.3, 0.3], 4: [0.1, 0.5, 0.3]})
    assert flat["slope"] == pytest.approx(0.0, abs=1e-12)
    assert flat["slope_lo"] < 0 < flat["slope_hi"] and not flat["significant"]
    assert not batch_trend({1: [0.5] * 3, 2: [0.4] * 3}, min_slope=0.2)["significant"]  # below min_slope
    assert np.isnan(batch_trend({4: [0.3, 0.2, 0.1]})["slope"])


def _series(counts, model, condition, kind, seq_len=64):
    return GiniSeries(model, condition, kind, seq_len, step_gini(counts, (1, 2, 4, 8, 16)))


def _mock_and_real(S=256, L=2, E=16, seed=0):
    rng = np.random.default_rng(seed)
    mock = rng.multinomial(24, np.full(E, 1 / E), size=(S, L)).astype(np.uint32)  # sampling noise only
    pattern = np.arange(1, E + 1, dtype=np.uint32)  # a fixed concentrated routing
    real = np.broadcast_to(pattern, (S, L, E)).copy()
    return mock, real


def test_trend_fabricated_by_mock():
    mock, real = _mock_and_real()
    v = mock_vs_real([_series(mock, "m", "mock-uniform", "mock"), _series(real, "m", "prose", "real")], n_boot=300)
    assert v.verdict == "fabricated by mock"
    (row,) = v.summary
    assert row["verdict"] == "fabricated by mock"
    assert row["mock_slope"] < 0 and row["mock_slope_hi"] < 0
    assert row["real_slope"] == pytest.approx(0, abs=1e-12)
    assert abs(row["real_slope_lo"]) < 1e-12 and abs(row["real_slope_hi"]) < 1e-12
    # ratio per B against an independent computation
    g_real = float(gini(np.arange(1, 17)))
    for r in v.tables["ratio"]:
        g_mock = float(np.mean(gini(step_counts(mock, r["batch"], step_order(256, 0))).mean(axis=1)))
        assert r["gini_real"] == pytest.approx(g_real)
        assert r["ratio"] == pytest.approx(g_mock / g_real)
        assert r["ratio_lo"] <= r["ratio"] <= r["ratio_hi"]
    assert v.numbers["models_flagged"] == ["m"]
    assert [e["batch"] for e in v.evidence if e["kind"] == "real"] == [1, 2, 4, 8, 16]
    assert v.summary[0]["ratio_batch"] == 8 and sum(r["at_ref"] for r in v.tables["ratio"]) == 1
    text = " ".join(v.sentences)
    assert "fabricated by the mock, in 1 of 1 pairs: m mock-uniform vs prose" in text
    assert "significant in 1 of 1 mock run(s)" in text and "in 0 of 1 real-text run(s)" in text


def test_trend_in_both_is_not_fabricated():
    mock, _ = _mock_and_real(seed=1)
    real, _ = _mock_and_real(seed=2)
    v = mock_vs_real([_series(mock, "m", "mock-uniform", "mock"), _series(real, "m", "prose", "real")], n_boot=200)
    assert v.summary[0]["verdict"] == "trend in both" and v.verdict == "not fabricated"


def test_runs_are_compared_within_model_and_seq_len():
    mock, real = _mock_and_real(S=64)
    a = GiniSeries("m", "mock-uniform", "mock", 64, step_gini(mock), path="runs/m/mock-uniform-L64")
    b = GiniSeries("m", "prose", "real", 64, step_gini(real), path="runs/m/prose-L64")
    c = GiniSeries("m", "prose", "real", 128, step_gini(real), path="runs/m/prose-L128")
    v = mock_vs_real([a, b, c], n_boot=100)
    assert [(r["mock"], r["real"], r["seq_len"]) for r in v.summary] == [("mock-uniform", "prose", 64)]
    assert v.notes[0] == "not compared: m at seq_len 128 has only real-text runs (runs/m/prose-L128)"
    with pytest.raises(
        DodocoError,
        match=r"m at seq_len 64 has only mock runs \(runs/m/mock-uniform-L64\); "
        r"m at seq_len 128 has only real-text runs \(runs/m/prose-L128\)",
    ):
        mock_vs_real([a, c])


def test_mock_of_one_model_and_real_of_another_are_refused_naming_runs():
    mock, real = _mock_and_real(S=32)
    a = GiniSeries("a", "mock-uniform", "mock", 64, step_gini(mock), path="runs/a/mock")
    b = GiniSeries("b", "prose", "real", 64, step_gini(real), path="runs/b/prose")
    with pytest.raises(
        DodocoError,
        match=r"a at seq_len 64 has only mock runs \(runs/a/mock\); "
        r"b at seq_len 64 has only real-text runs \(runs/b/prose\)",
    ):
        mock_vs_real([a, b])


def test_few_step_batch_sizes_have_no_interval_and_no_say_in_the_slope():
    # B=8 rests on two steps; were it in the slope (with its 0.9), the slope would be positive
    t = batch_trend({1: [0.5, 0.5, 0.5, 0.5], 2: [0.4, 0.4, 0.4], 4: [0.3, 0.3, 0.3], 8: [0.9, 0.9]}, n_boot=50)
    assert t["judged"] == [1, 2, 4] and t["slope"] == pytest.approx(-0.1)
    assert t["n"] == [4, 3, 3, 2] and np.isnan(t["mean_lo"][3]) and np.isnan(t["mean_hi"][3])
    one = batch_trend({1: [0.5], 2: [0.4], 4: [0.3]})
    assert np.isnan(one["slope"]) and not one["significant"]  # one step per B (a window aggregate)
    v = mock_vs_real(
        [
            GiniSeries("m", "mock-uniform", "mock", 8, {1: [0.5], 2: [0.4]}),
            GiniSeries("m", "prose", "real", 8, {1: [0.3], 2: [0.3]}),
        ]
    )
    assert v.verdict == "undetermined" and v.summary[0]["verdict"] == "not judged (too few steps)"
    ratio = v.tables["ratio"][0]
    assert ratio["few_steps"] and ratio["ratio"] == pytest.approx(0.5 / 0.3) and np.isnan(ratio["ratio_lo"])
    assert "ratio 1.333 (1 step, no interval) at B=2; no mock slope (too few steps)" in v.sentences[-1]


def test_step_gini_from_a_shared_step_source():
    from dodoco.ep.steps import source_of

    counts = np.random.default_rng(4).poisson(3, size=(24, 2, 8)).astype(np.uint32)
    direct = step_gini(counts, (1, 2, 4, 8), seed=5)
    shared = step_gini(None, (1, 2, 4, 8), seed=5, source=source_of(counts, 5))
    assert sorted(shared) == sorted(direct)
    for B in direct:
        np.testing.assert_allclose(shared[B], direct[B], rtol=1e-12)


def test_step_gini_sums_past_uint32_in_64_bits():
    """A step of two sequences holding 3e9 + 3e9 assignments on one expert (6e9 > 2**32): a uint32 sum
    wraps to 1.7e9 and gives Gini 0.04 instead of 0.25."""
    seq = np.array([[3_000_000_000, 1_000_000_000, 1_000_000_000, 1_000_000_000]], dtype=np.uint32)  # [L=1, E=4]
    counts = np.broadcast_to(seq, (4, 1, 4)).copy()
    got = step_gini(counts, (1, 2, 4))
    # hand: a step of B sequences is B x [3, 1, 1, 1] e9; sorted [1, 1, 1, 3], weights [-3, -1, 1, 3]:
    # (-3 - 1 + 1 + 9) / (4 * 6) = 0.25 for every B
    for B in (1, 2, 4):
        np.testing.assert_allclose(got[B], 0.25, rtol=1e-12)
    wrapped = np.array([6_000_000_000 % 2**32, 2e9, 2e9, 2e9])
    assert float(gini(wrapped)) < 0.05  # what a uint32 sum would have reported
