"""The dispatch model's forms and fit against definitions and a pinned calibration, where the module
tests leave room for wrong code (found by bench/bench_mutation.py)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.simulate.forms import FORMS, Balanced, evaluate, feats, fit_balanced, fit_line, fit_params, nominal

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_replay import load_synthetic, replay_v2, truth_form  # noqa: E402

FLAT = Balanced(1e-5, np.array([1e6]), np.array([1e9]))


def test_features_of_a_batch_equal_those_of_each_matrix():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 100, (4, 3, 3)).astype(np.int64)
    f = feats(b)
    for k in range(4):
        one = feats(b[k])
        off = b[k] * (1 - np.eye(3))
        S, R = off.sum(1), off.sum(0)
        assert f.N == 3 and one.m[0] == pytest.approx(S.mean()) and f.m[k] == pytest.approx(S.mean())
        assert f.M[k] == max(S.max(), R.max()) and f.pair[k] == off.max() and f.x[k] == b[k].sum() / 3
    solo = feats(np.array([[[5.0]], [[7.0]]]))
    assert solo.N == 1 and solo.pair.tolist() == [0.0, 0.0] and solo.x.tolist() == [5.0, 7.0]


def test_pair_rate_and_max_terms_of_several_matrices():
    bal = Balanced(0.0, np.array([1e6, 1e8]), np.array([1e8, 1e10]))
    b = np.array(
        [[[9.0, 2e6, 0.0], [5e6, 0.0, 4e7], [1e6, 0.0, 0.0]], [[0.0, 0.0, 3e6], [0.0, 0.0, 0.0], [0.0, 6e6, 0.0]]]
    )
    t = FORMS["pair_rate"].predict(feats(b), bal, [0.5])
    # every message costs 5 ms at this rate (see test_dispatch_model); matrix 1: sends 1, 0, 1 messages,
    # receives 0, 1, 1 -> mean sigma 10/3 ms, busiest 5 ms
    np.testing.assert_allclose(t, [0.02 / 3 + 0.5 * (0.01 - 0.02 / 3), 0.01 / 3 + 0.5 * (0.005 - 0.01 / 3)])
    lead = evaluate("blend", np.stack([b, b * 2]), FLAT, [0.5])
    assert lead.shape == (2, 2)
    np.testing.assert_allclose(lead[1], evaluate("blend", b * 2, FLAT, np.array([0.5])))
    np.testing.assert_allclose(evaluate("volume", b[0], FLAT), FORMS["volume"].predict(feats(b[0]), FLAT, []))


def test_fit_line_exact_and_through_the_origin():
    x = np.array([1e6, 4e6, 16e6])
    a, beff = fit_line(x, 2e-5 + x / 1e9)
    assert a == pytest.approx(2e-5, rel=1e-9) and beff == pytest.approx(1e9, rel=1e-9)
    t = np.array([1.0e-3, 3.9e-3, 17e-3])  # a least-squares intercept < 0: forced through 0
    a, beff = fit_line([1e6, 4e6, 16e6], t)
    w = 1 / t
    assert a == 0.0 and 1 / beff == pytest.approx(np.sum(x * t * w**2) / np.sum((x * w) ** 2), rel=1e-12)


def test_balanced_curve_at_its_thresholds():
    m = np.array([1 << 20, 1 << 22, 1 << 24], dtype=np.int64)  # the first exactly at min_bytes: kept
    t = 1e-5 + m / 1e9
    bal = fit_balanced(m, t)
    assert bal.m.tolist() == m.tolist() and bal.alpha == pytest.approx(1e-5, rel=1e-6)
    two = fit_balanced(m[1:], t[1:])
    assert len(two.m) == 2
    with pytest.raises(DodocoError, match="at least 2 sizes"):
        fit_balanced(m[1:], t[1:], min_bytes=(1 << 22) + 1)  # one size left
    d = Balanced(3e-6, np.array([1.0, 8.0]), np.array([2e9, 4e9])).to_dict()
    back = Balanced.from_dict(json.loads(json.dumps({**d, "m_bytes": [1, 8]})))
    assert back.m.dtype == np.float64 and back.beff.dtype == np.float64 and back.alpha == pytest.approx(3e-6)
    assert nominal(1e-6, 5e9).m.tolist() == [1.0] and nominal(1e-6, 5e9).bw(1e12) == pytest.approx(5e9)
    np.testing.assert_allclose(FLAT.bw(np.array([0, 1])), [1e9, 1e9])  # sizes below one byte clamp at one


def _reference_search(form, f, bal, t, steps=13, rounds=4):
    """fit_params as documented: a grid of ``steps`` values per parameter over the bounds, zoomed
    ``rounds`` times to +- one grid step around the best point (clipped to the bounds)."""
    lo = np.array([b[0] for b in form.bounds], float)
    hi = np.array([b[1] for b in form.bounds], float)
    best = (lo + hi) / 2
    for _ in range(rounds):
        axes = [np.linspace(a, b, steps) for a, b in zip(lo, hi)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
        err = [float((((form.predict(f, bal, g) - t) / t) ** 2).sum()) for g in grid]
        best = grid[int(np.argmin(err))]
        span = (hi - lo) / (steps - 1)
        lo = np.maximum(best - span, [b[0] for b in form.bounds])
        hi = np.minimum(best + span, [b[1] for b in form.bounds])
    return best


@pytest.mark.parametrize("name,theta", [("blend", [0.7321]), ("max_terms", [1.31, 0.47, 0.62])])
def test_fit_params_is_the_documented_grid_search(name, theta):
    rng = np.random.default_rng(1)
    b = rng.gamma(2.0, size=(9, 4, 4)) * 1e7
    f = feats(b)
    t = FORMS[name].predict(f, FLAT, np.asarray(theta)) * (1 + 0.01 * rng.standard_normal(9))
    np.testing.assert_array_equal(fit_params(FORMS[name], f, FLAT, t), _reference_search(FORMS[name], f, FLAT, t))
    np.testing.assert_array_equal(
        fit_params(FORMS[name], f, FLAT, t, rounds=0), [(lo + hi) / 2 for lo, hi in FORMS[name].bounds]
    )
    one = fit_params(FORMS[name], feats(b[:1]), FLAT, t[:1])  # one sample still fits
    np.testing.assert_array_equal(one, _reference_search(FORMS[name], feats(b[:1]), FLAT, t[:1]))
    assert fit_params(FORMS["volume"], f, FLAT, t).shape == (0,)
    assert fit_params(FORMS[name], feats(b[:0]), FLAT, t[:0]).tolist() == [0.0] * len(theta)


def test_the_calibration_of_a_known_replay_is_pinned(tmp_path):
    """calibrate() on a synthetic replay whose truth is a known form: the chosen forms, their knots,
    parameters, scores and every record, pinned in tests/simulate/fixtures/calibration-pinned.json.
    Regenerate deliberately (DODOCO_REPIN=1) when the fit is meant to change."""
    import os

    from dodoco.simulate.fit import calibrate
    from dodoco.simulate.samples import load_groups

    d = replay_v2(truth_form("max_terms", lambda mb: [1.0 + mb / 1024, 0.5, 0.3], noise=0.01), N=4)
    f = tmp_path / "r.json"
    f.write_text(json.dumps(d))
    groups, sources = load_groups([f])
    cal, records = calibrate(groups, sources)
    keep = {k: v for k, v in cal.to_dict().items() if k not in ("created", "sources", "dodoco")}
    got = json.loads(
        json.dumps(
            {"calibration": keep, "records": records},
            default=lambda o: o.to_dict() if hasattr(o, "to_dict") else float(o),
        )
    )
    pinned = Path(__file__).parent / "fixtures" / "calibration-pinned.json"
    if os.environ.get("DODOCO_REPIN"):
        pinned.parent.mkdir(exist_ok=True)
        pinned.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(pinned.read_text())


_groups_of = load_synthetic


def test_groups_that_cannot_be_calibrated_are_recorded_and_the_rest_calibrated(tmp_path):
    from dodoco.simulate.fit import calibrate

    good = replay_v2(truth_form("blend", lambda mb: [0.6]), N=4)
    bad = replay_v2(
        truth_form("blend", lambda mb: [0.6]), N=2, sizes_mb=(0.5,), skews=(1.0, 2.0), routing_mb=(24,), routing_cases=1
    )  # balanced points below 1 MiB only: no balanced curve
    groups, sources = _groups_of(tmp_path, {"replays": [good, bad]}, "both.json")
    cal, records = calibrate(groups, sources, notes=("a note",))
    skipped = [r for r in records if "skipped" in r]
    assert {(r["machine"], r["N"], r["dispatcher"], r["phase"]) for r in skipped} == {
        ("fake-x4", 2, "nccl", "dispatch"),
        ("fake-x4", 2, "nccl", "combine"),
    }
    assert all("at least 2 sizes" in r["skipped"] for r in skipped)
    assert {f.N for f in cal.fits} == {4} and len([r for r in records if "fits" in r]) == 2
    d = cal.to_dict()
    assert d["notes"] == ["a note"] and [s["sha256"] for s in d["sources"]] == [sources[0].sha256]
    only_bad, src = _groups_of(tmp_path, bad, "bad.json")
    with pytest.raises(DodocoError, match="no group could be calibrated: .*at least 2 sizes"):
        calibrate(only_bad, src)


def test_without_imbalanced_calibration_the_naive_max_is_chosen_and_says_why(tmp_path):
    from dodoco.simulate.fit import fit_form, fit_group

    d = replay_v2(truth_form("volume", lambda mb: []), N=4, skews=(1.0,), routing_cases=2)
    groups, _ = _groups_of(tmp_path, d, "flat.json")
    fits, rec = fit_group(groups[0])
    assert rec["chosen"] == "naive_max" and rec["why"].startswith("no imbalanced calibration samples")
    assert rec["scores"]["blend"]["grid_heldout_median_pct"] is None and set(fits) >= {"blend", "naive_max"}
    imb = groups[0].where(np.zeros(len(groups[0].t), dtype=bool))
    knots, theta = fit_form("blend", imb, fits["blend"].balanced)  # no samples: one knot at 128 MiB, zeros
    assert knots.tolist() == [27.0] and theta.tolist() == [[0.0]]
    knots, theta = fit_form("volume", groups[0], fits["blend"].balanced)  # no parameters: the median size
    assert theta.shape == (1, 0) and knots[0] == pytest.approx(float(np.median(np.log2(feats(groups[0].b).x))))


def test_features_and_pair_rate_at_two_ranks_and_one_byte():
    f = feats(np.array([[0.0, 5.0], [3.0, 9.0]]))
    assert f.pair[0] == 5.0 and f.m[0] == 4.0 and f.M[0] == 5.0
    bal = Balanced(0.0, np.array([1e6, 1e8]), np.array([1e8, 1e10]))
    b = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # one byte per pair
    cost = 1.0 / bal.bw(2.0)  # rate of a 1-byte message: the clamped smallest measured rate
    np.testing.assert_allclose(FORMS["pair_rate"].predict(feats(b), bal, [0.5]), [cost])


def test_balanced_points_near_the_fixed_cost_carry_no_bandwidth():
    alpha, beff = 4e-5, 2e9  # points on one line: the fit recovers alpha exactly
    m = np.array([0.01 * alpha * beff, 0.5 * alpha * beff, 1 << 21, 1 << 23])  # 1.01 alpha, 1.5 alpha, ...
    bal = fit_balanced(m, alpha + m / beff, min_bytes=1)
    assert bal.alpha == pytest.approx(alpha, rel=1e-9)
    assert bal.m.tolist() == m[1:].tolist()  # within 2% of alpha: no bandwidth in it; 1.5 alpha: kept
    one = fit_balanced(m[:2], alpha + m[:2] / beff, min_bytes=1)  # exactly one point left is enough
    assert one.m.tolist() == [m[1]]


def test_fold_order_small_groups_and_empty_parts(tmp_path):
    from dodoco.simulate.fit import fit_form, fit_group

    d = replay_v2(truth_form("blend", lambda mb: [0.6]), N=4, sizes_mb=(64, 256))
    groups, _ = _groups_of(tmp_path, d, "two.json")
    _, rec = fit_group(groups[0])
    perm = np.random.default_rng(0).permutation(len(d["rows"]))
    shuffled = dict(d, rows=[d["rows"][i] for i in perm])
    _, rec2 = fit_group(_groups_of(tmp_path, shuffled, "shuffled.json")[0][0])
    assert rec2["scores"] == rec["scores"]  # folds follow the sizes, not the file's order
    pinned = Path(__file__).parent / "fixtures" / "fit-two-sizes-pinned.json"
    got = json.loads(json.dumps(rec["scores"]))
    import os

    if os.environ.get("DODOCO_REPIN"):
        pinned.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(pinned.read_text())
    g = groups[0]
    fits, _ = fit_group(g)
    fit = g.of_role("fit")
    imb_idx = np.flatnonzero(feats(fit.b).M > 1.001 * feats(fit.b).m)
    for keep in (1, 2):
        sub = fit.where(
            np.isin(
                np.arange(len(fit.t)), np.r_[np.flatnonzero(feats(fit.b).M <= 1.001 * feats(fit.b).m), imb_idx[:keep]]
            )
        )
        _, r = fit_group(sub)
        held = r["scores"]["blend"]["grid_heldout_median_pct"]
        assert (held is None) if keep == 1 else (held is not None)
        assert r["scores"]["blend"]["select_median_pct"] is None  # no routing samples in the subset
    none = fit.where(feats(fit.b).M <= 1.001 * feats(fit.b).m)
    _, r = fit_group(none)
    assert r["scores"]["blend"]["score"] == float("inf") and r["chosen"] == "naive_max"
    one = fit.where(np.arange(len(fit.t)) == imb_idx[0])
    knots, theta = fit_form("blend", one, fits["blend"].balanced)
    assert (
        theta.shape == (1, 1)
        and theta[0, 0] == fit_params(FORMS["blend"], feats(one.b), fits["blend"].balanced, one.t)[0]
    )


def test_calibrated_sizes_are_labelled_to_a_tenth_of_a_megabyte(tmp_path):
    from dodoco.simulate.fit import fit_group

    row = 1050  # 1000 rows of 1050 bytes: 1.05 MB per rank, labelled 1.1
    d = replay_v2(truth_form("blend", lambda mb: [0.6]), N=4, sizes_mb=(1000 * row / (1 << 20), 8.0), row_bytes=row)
    _, rec = fit_group(_groups_of(tmp_path, d, "small.json")[0][0])
    assert 1.1 in rec["fit_sizes_MB"]


def test_held_out_errors_leave_each_size_out_from_two_sizes_on(tmp_path):
    from dodoco.simulate.fit import _heldout, fit_group, imbalanced

    for sizes, extra in (((64,), 0), ((64, 256), 1)):
        d = replay_v2(truth_form("blend", lambda mb: [0.6]), N=4, sizes_mb=sizes)
        g = _groups_of(tmp_path, d, f"s{len(sizes)}.json")[0][0]
        fits, _ = fit_group(g)
        fit = g.of_role("fit")
        imb = fit.where(imbalanced(fit))
        errs = _heldout("blend", imb, fits["blend"].balanced)
        assert len(errs) == len(imb.t) * (1 + extra)  # 5-fold errors, then one per sample left out by size
