"""Dispatch model, calibration and its validation on synthetic replay results with known parameters."""

import numpy as np
import pytest

from dodoco.replay.plan import balanced_splits, case_bytes, skewed_splits
from dodoco.simulate.calibrate import calibrate, validation_rows
from dodoco.simulate.model import LinkModel, fit_line, fit_weight, off_diagonal, predict


def test_predict_hand_case():
    b = np.array([[50.0, 100.0], [300.0, 7.0]])  # diagonal stays local
    S, R, pair = off_diagonal(b)
    assert S.tolist() == [100.0, 300.0] and R.tolist() == [300.0, 100.0] and pair == 300.0
    m = LinkModel(alpha=1e-6, beff=1e3, w=0.5)  # A = 0.5*300 + 0.5*200 = 250 bytes
    assert predict(b, m) == pytest.approx(1e-6 + 0.25)
    assert predict(b, LinkModel(1e-6, 1e3, 1.0)) == pytest.approx(1e-6 + 0.3)  # naive max model
    assert predict(b, LinkModel(0.0, 1e3, 0.5, pair_bw=100.0)) == pytest.approx(3.0)  # pair link binds


def test_fit_line_and_weight_recover_parameters():
    x = np.geomspace(1e6, 5e8, 12)
    alpha, beff = 30e-6, 300e9
    a, b = fit_line(x, alpha + x / beff)
    assert a == pytest.approx(alpha, rel=1e-6) and b == pytest.approx(beff, rel=1e-6)
    m = np.full(5, 1e8)
    M = m * np.array([1.0, 1.25, 1.5, 2.0, 3.0])
    t = alpha + (0.6 * M + 0.4 * m) / beff
    w, spread = fit_weight(M, m, t, alpha, beff)
    assert w == pytest.approx(0.6, abs=1e-9) and spread > 0.1
    assert fit_weight(m, m, alpha + m / beff, alpha, beff) == (1.0, 0.0)  # balanced: w not identifiable


def _fake_result(N, alpha, beff, w, row_bytes=4096, noise=0.0, seed=0):
    """A replay result whose times follow the model exactly (plus relative noise)."""
    rng = np.random.default_rng(seed)
    m = LinkModel(alpha, beff, w)

    def case(kind, splits, cond):
        s = np.asarray(splits)
        t = [float(predict(bb, m)) * (1 + noise * rng.standard_normal()) * 1e3
             for bb in (s * row_bytes, s.T * row_bytes)]
        return {"condition": cond, "kind": kind, "step": 0, "layer": 0, **case_bytes(s, row_bytes),
                "splits": s.tolist(), "dispatch": {"median_ms": t[0]}, "combine": {"median_ms": t[1]}}

    rows = np.full(N, 32768)
    cases = []
    for k in range(6):
        real = balanced_splits(rows)
        for i in range(N):  # move units within each row: same bytes per rank, uneven receivers
            j, l = rng.choice(N, 2, replace=False)
            d = int(rng.integers(0, real[i, l]))
            real[i, j] += d
            real[i, l] -= d
        cases += [case("real", real, "prose"), case("mock", balanced_splits(real.sum(1)) + 100, "mock"),
                  case("balanced", balanced_splits(real.sum(1)), "balanced")]
    cases += [case("skew", skewed_splits(rows, r), f"skew-{r}") for r in (1.25, 1.5, 2.0)]
    sweep = [{"bytes_per_rank": b, "median_ms": 1e3 * (alpha + b * (N - 1) / N / beff)}
             for b in (1 << 20, 1 << 24, 1 << 28)]
    return {"schema": "dodoco.replay/1", "N": N, "row_bytes": row_bytes, "device": {"name": "fake"},
            "cases": cases, "sweep": sweep}


def test_calibrate_recovers_known_model_and_validates():
    results = [_fake_result(2, 30e-6, 280e9, 0.7), _fake_result(4, 32e-6, 310e9, 0.8, seed=1)]
    cal, held = calibrate(results)
    assert cal.per_n[2].alpha == pytest.approx(30e-6, rel=1e-3)
    assert cal.per_n[4].beff == pytest.approx(310e9, rel=1e-3)
    assert cal.per_n[2].w == pytest.approx(0.7, abs=1e-3) and cal.per_n[4].w == pytest.approx(0.8, abs=1e-3)
    assert 0.7 < cal.w < 0.8
    assert cal.alpha_at(8) == pytest.approx(36e-6, rel=1e-6)  # linear in N-1: 30 us at 1, 32 us at 3
    assert len(held[2]) == 12  # real + mock held out (skew controls fit w)
    rows = validation_rows(cal, results, held)
    held_rows = [r for r in rows if "held out" in r["cases"]]
    assert len(held_rows) == 4 and max(r["err_pct_median"] for r in held_rows) < 1e-6
    loo = [r for r in rows if "leave-one-out" in r["cases"]]
    assert [r["n"] for r in loo] == [3, 3] and max(r["err_pct_median"] for r in loo) < 1e-6
    assert all(r["naive_max_err_pct"] > 1.0 for r in loo)  # the max-only model misses the skew controls


def test_calibrate_without_skew_controls_splits_cases():
    res = _fake_result(2, 30e-6, 280e9, 0.7, noise=0.01)
    res["cases"] = [c for c in res["cases"] if c["kind"] != "skew"]
    cal, held = calibrate([res])
    assert len(held[2]) == 6  # half of the 12 real/mock cases validate
    assert "seeded half" in cal.notes[0]
