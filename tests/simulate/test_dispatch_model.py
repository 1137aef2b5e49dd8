"""Dispatch model forms by hand, the balanced curve, fitting, the choice by held-out error, the split."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.simulate.calibration import Calibration, load_calibration
from dodoco.simulate.fit import calibrate, fit_group, imbalanced, pct_errors
from dodoco.simulate.forms import FORMS, Balanced, feats, fit_balanced, fit_params
from dodoco.simulate.holdout import form_rows, leaks, target_rows, validation_rows

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_replay import BAL, MB, load_synthetic, replay_v1, replay_v2, truth_form  # noqa: E402

B = np.array([[9e6, 30e6, 10e6], [0.0, 50e6, 60e6], [20e6, 20e6, 0.0]])  # diagonal 9 MB, 50 MB stays local
FLAT = Balanced(1e-5, np.array([1e6]), np.array([1e9]))  # alpha 10 us, 1 GB/s at every size


def test_features_exclude_the_diagonal():
    f = feats(B)
    # off-diagonal sends S = [40, 60, 40] MB, receives R = [20, 50, 70] MB
    assert f.m[0] == pytest.approx(140e6 / 3) and f.M[0] == pytest.approx(70e6) and f.pair[0] == 60e6
    assert f.x[0] == pytest.approx(199e6 / 3)  # per-rank size counts the diagonal


def test_forms_by_hand():
    f, m = feats(B), 140e6 / 3
    t = {
        name: float(FORMS[name].predict(f, FLAT, th)[0])
        for name, th in (("volume", []), ("naive_max", []), ("blend", [0.5]), ("max_terms", [1.2, 0.5, 0.0]))
    }
    assert t["volume"] == pytest.approx(1e-5 + m / 1e9)
    assert t["naive_max"] == pytest.approx(1e-5 + 70e6 / 1e9)
    assert t["blend"] == pytest.approx(1e-5 + (m + 0.5 * (70e6 - m)) / 1e9)
    assert t["max_terms"] == pytest.approx(1e-5 + 1.2 * (m + 0.5 * (70e6 - m)) / 1e9)
    # the pair term: q (N-1) max pair = 1 * 2 * 60 MB binds over the receiver term
    assert float(FORMS["max_terms"].predict(f, FLAT, [1.2, 0.5, 1.0])[0]) == pytest.approx(1e-5 + 120e6 / 1e9)


def test_pair_rate_prices_each_message_at_the_rate_of_its_size():
    # B(m) = 100 m in 1e6..1e8 (log-log slope 1): a pair message of p bytes costs p / B(2p) = 5 ms
    # whatever its size, so each rank's cost counts its messages (diagonal ignored)
    bal = Balanced(0.0, np.array([1e6, 1e8]), np.array([1e8, 1e10]))
    b = np.array([[9.0, 2e6, 0.0], [5e6, 0.0, 4e7], [1e6, 0.0, 0.0]])
    # sends: 1, 2, 1 messages; receives: 2, 1, 1 -> mean sigma 20/3 ms, busiest 10 ms
    t = float(FORMS["pair_rate"].predict(feats(b), bal, [0.5])[0])
    assert t == pytest.approx(0.02 / 3 + 0.5 * (0.01 - 0.02 / 3))


def test_balanced_curve_recovers_a_line_and_reproduces_measured_points():
    m = np.array([16, 64, 256, 512]) * 1.0 * MB
    bal = fit_balanced(m, 30e-6 + m / 300e9)
    assert bal.alpha == pytest.approx(30e-6, rel=1e-6) and np.allclose(bal.beff, 300e9, rtol=1e-6)
    t = np.array([80e-6, 250e-6, 900e-6, 1800e-6])  # not a line: measured points are reproduced exactly
    bal = fit_balanced(m, t)
    np.testing.assert_allclose(bal.time(m), t, rtol=1e-9)
    mid = np.sqrt(m[1] * m[2])  # log-log interpolation between 64 and 256 MB
    assert bal.bw(mid) == pytest.approx(np.sqrt(bal.bw(m[1]) * bal.bw(m[2])), rel=1e-9)
    with pytest.raises(DodocoError, match="at least 2 sizes"):
        fit_balanced(m[:1], t[:1])


@pytest.mark.parametrize("name,theta", [("blend", [0.37]), ("max_terms", [1.3, 0.4, 0.6])])
def test_fit_params_recover_the_truth(name, theta):
    d = replay_v2(truth_form(name, lambda mb: theta), sizes_mb=(256,))
    b = np.stack([np.asarray(c["splits"]) * 4096.0 for c in d["rows"] if c["kind"] == "grid"])
    t = np.array([c["dispatch"]["median_ms"] * 1e-3 for c in d["rows"] if c["kind"] == "grid"])
    imb = feats(b).M > feats(b).m * 1.001
    got = fit_params(FORMS[name], feats(b[imb]), BAL, t[imb])
    np.testing.assert_allclose(got, theta, atol=2e-3)


_groups = load_synthetic


def _size_dependent(mb):
    """NCCL-like: at 256 MB skew costs little (k ~ 1, w 0.72), at 470 MB any skew costs (k 1.39, w 0.29)."""
    lx = np.log2(mb)
    knots = np.log2([16, 256, 470])
    return [np.interp(lx, knots, [0.97, 0.97, 1.39]), np.interp(lx, knots, [0.72, 0.72, 0.29]), 0.0]


def test_size_dependent_truth_is_chosen_and_validates_off_grid(tmp_path):
    groups, sources = _groups(tmp_path, replay_v2(truth_form("max_terms", _size_dependent, noise=0.005)))
    cal, records = calibrate(groups, sources)
    assert {f.form for f in cal.fits} == {"max_terms"}
    rows = validation_rows(records, groups)
    assert {r["band"] for r in rows} == {"16-64 MB", "64-256 MB", ">=256 MB"} and all(r["on_grid"] == 0 for r in rows)
    for t in target_rows(records, groups):
        assert t["met"] and t["off_grid_samples"] == t["samples"] >= 10
    by = {r["form"]: r for r in form_rows(records, groups)}
    assert by["max_terms"]["median_pct"] < 1.0 < 5.0 < by["naive_max"]["median_pct"]


def test_pair_term_is_found_from_hot_pair_patterns(tmp_path):
    groups, sources = _groups(tmp_path, replay_v2(truth_form("max_terms", lambda mb: [1.0, 0.5, 1.0], noise=0.005)))
    cal, records = calibrate(groups, sources)
    assert {f.form for f in cal.fits} == {"max_terms"}
    by = {r["form"]: r for r in form_rows(records, groups)}
    assert by["max_terms"]["median_pct"] < 1.0 and min(by[k]["median_pct"] for k in ("blend", "pair_rate")) > 10


def test_choice_is_by_held_out_error_not_in_sample(tmp_path):
    # noisy data from a one-parameter truth: the three-parameter form (which nests blend) fits the
    # calibration samples better than blend in sample, but predicts held-out ones worse: not chosen
    d = replay_v2(truth_form("blend", lambda mb: [0.7], noise=0.04, seed=3), skews=(1.0, 1.25, 1.5, 2.0), seed=3)
    groups, _ = _groups(tmp_path, d)
    for g in groups:
        fits, rec = fit_group(g)
        fs = g.of_role("fit")
        imb = fs.where(imbalanced(fs))
        rms = {k: float(np.sqrt(np.mean(pct_errors(f.predict(imb.b), imb.t) ** 2))) for k, f in fits.items()}
        assert rms["max_terms"] < rms["blend"] and rec["chosen"] != "max_terms"


def test_validation_samples_never_reach_the_fit(tmp_path):
    d = replay_v2(truth_form("max_terms", _size_dependent, noise=0.005))
    groups, sources = _groups(tmp_path, d)
    cal, _ = calibrate(groups, sources)
    assert leaks(groups) == []
    roles = {i: r for g in groups for i, r in zip(g.ids, g.role)}
    assert {r for i, r in roles.items() if ":real:" in i} == {"select", "validate"}
    # scale every validate time: the calibration must not move at all
    for c in d["rows"]:
        if c["kind"] == "real" and _role_of(c) == "validate":
            c["dispatch"]["median_ms"] *= 3.0
            c["combine"]["median_ms"] *= 3.0
    cal2, _ = calibrate(*_groups(tmp_path / "b", d))
    assert [f.to_dict() for f in cal2.fits] == [f.to_dict() for f in cal.fits]
    # the same check fails when a fit sample moves (so it can catch a leak)
    d["rows"][3]["dispatch"]["median_ms"] *= 3.0
    cal3, _ = calibrate(*_groups(tmp_path / "c", d))
    assert [f.to_dict() for f in cal3.fits] != [f.to_dict() for f in cal.fits]


def _role_of(case):
    from dodoco.simulate.samples import routing_role

    return routing_role(case["model"], case["condition"], case["step"], case["layer"])


def test_a_duplicated_measurement_is_a_leak(tmp_path):
    d = replay_v2(truth_form("blend", lambda mb: [0.7]), routing_cases=2)
    v = next(c for c in d["rows"] if c["kind"] == "real" and _role_of(c) == "validate")
    d["rows"].append({**v, "kind": "grid", "pattern": "hot-receiver"})  # the same replay, also in the grid
    d["rows"].append({**v, "kind": "grid", "check": "rank 1: row 7 from source 0 is wrong"})  # not a measurement
    groups, _ = _groups(tmp_path, d)
    assert len(leaks(groups)) == 1
    assert sum(len(g.t) for g in groups) == 2 * (len(d["rows"]) - 1)


def test_gloo_dry_run_is_refused_and_schema_1_roles(tmp_path):
    d = replay_v2(truth_form("blend", lambda mb: [0.7]))
    d["backend"] = "gloo"
    with pytest.raises(DodocoError, match="gloo replay .* not GPU dispatch times") as e:
        _groups(tmp_path, d)
    assert "\n" not in str(e.value)
    v1 = replay_v1(sweep=True)
    groups, _ = _groups(tmp_path, v1, "v1.json")
    g = groups[1]  # dispatch
    assert g.dispatcher == "nccl" and g.phase == "dispatch" and g.machine == "Fake x2"
    assert dict(zip(g.kind, g.role)) == {
        "real": _role_of({"model": "m", "condition": "prose", "step": 0, "layer": 0}),
        "skew": "fit",
        "balanced": "fit",
        "sweep": "fit",
    }


def test_calibration_json_roundtrip_and_lookup(tmp_path):
    groups, sources = _groups(tmp_path, replay_v2(truth_form("max_terms", _size_dependent), N=4, routing_cases=2))
    cal, _ = calibrate(groups, sources)
    p = tmp_path / "cal.json"
    p.write_text(json.dumps(cal.to_dict()))
    back = load_calibration(p)
    b = groups[0].b[:5]
    for f0, f1 in zip(cal.fits, back.fits):
        np.testing.assert_allclose(f0.predict(b), f1.predict(b), rtol=1e-12)
    fit, note = back.lookup(8, "nccl", "dispatch")
    assert fit.N == 4 and note == "fit of N=4 used for N=8"
    with pytest.raises(DodocoError, match="no dispatch fit for dispatcher 'deepep'"):
        back.lookup(4, "deepep", "dispatch")
    assert isinstance(back, Calibration) and "fake-x4" in back.describe()
