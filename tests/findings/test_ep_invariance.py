"""EP invariance verdict: hand-built scans, the few-steps rule, placement removal, and scans of
synthetic runs checked against a direct computation."""

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.findings import EPCurve, FindingsOptions, RunScan, ep_invariance, relative_change
from dodoco.findings.runs import scan
from dodoco.findings.synthetic import write_counts_run
from dodoco.ep.steps import step_order
from dodoco.metrics import max_mean
from dodoco.store import open_run

NAN = float("nan")


def step_counts(counts, P, order):
    """Independent step sums: counts in ``order``, consecutive groups of P, remainder dropped."""
    n = len(order) // P
    return counts[order][: n * P].astype(np.int64).reshape((n, P) + counts.shape[1:]).sum(1)


def _curve(ep, mean, steps=None, layers=None, width=0.01):
    ep, mean = np.array(ep), np.array(mean, dtype=float)
    steps = np.array(steps if steps is not None else [10] * len(ep))
    few = steps <= 2
    lo, hi = np.where(few, NAN, mean - width), np.where(few, NAN, mean + width)
    lay = np.array(layers, dtype=float) if layers is not None else np.empty((len(ep), 0))
    return EPCurve(ep, mean, lo, hi, steps, lay)


def _scan(mm, skew=None, E=64, **curves):
    """RunScan of model m / prose at B=1 with max/mean curve ``mm`` and receiver skew per placement."""
    c = {("max_mean", "contiguous"): mm, ("receiver_skew", "contiguous"): skew or mm}
    c.update({("receiver_skew", p): v for p, v in curves.items()})
    return RunScan("m", "prose", "real", 64, E, 1, "all", c, "runs/m/prose-L64")


def test_relative_change_hand_computed():
    assert relative_change([1.0, 1.04, 1.02]) == pytest.approx(0.04)
    np.testing.assert_allclose(relative_change([[2.0, 1.0], [3.0, 1.5]]), [0.5, 0.5])
    assert np.isnan(relative_change([0.0, 1.0]))


def test_threshold_is_inclusive_and_configurable():
    ok = ep_invariance([_scan(_curve([4, 8], [2.0, 2.1]), _curve([4, 8], [1.1, 1.3]))])  # change exactly 5%
    assert ok.verdict == "intrinsic" and ok.summary[0]["max_mean_change"] == pytest.approx(0.05)
    assert ok.summary[0]["receiver_skew_change"] == pytest.approx(0.2 / 1.1)
    bad = ep_invariance([_scan(_curve([4, 8], [2.0, 2.2]))])
    assert bad.verdict == "placement-sensitive"
    assert ep_invariance([_scan(_curve([4, 8], [2.0, 2.2]))], threshold=0.1).verdict == "intrinsic"
    assert [r["ep"] for r in bad.evidence] == [4, 8] and bad.evidence[1]["max_mean_lo"] == pytest.approx(2.19)
    with pytest.raises(DodocoError, match="threshold must be >= 0"):
        ep_invariance([_scan(_curve([4, 8], [2.0, 2.2]))], threshold=-1)


def test_few_step_degrees_are_flagged_and_not_judged():
    # N=32 rests on one step: were it judged, the change would be 50% (placement-sensitive)
    v = ep_invariance([_scan(_curve([4, 8, 32], [2.0, 2.02, 3.0], steps=[8, 4, 1]))])
    assert v.verdict == "intrinsic" and v.summary[0]["max_mean_change"] == pytest.approx(0.01)
    assert v.summary[0]["judged_eps"] == "4,8"
    last = v.evidence[-1]
    assert last["few_steps"] and last["steps"] == 1 and np.isnan(last["max_mean_lo"])
    assert "N=32 rest on two steps or fewer" in v.sentences[-1]
    assert "3.000 [" not in " ".join(v.sentences)  # no interval is written for a one-step value


def test_one_step_everywhere_is_undetermined():
    v = ep_invariance([_scan(_curve([4, 8, 16], [2.0, 2.0, 2.0], steps=[1, 1, 1]))])
    assert v.verdict == "undetermined" and v.summary[0]["verdict"] == "undetermined"
    assert "no run could be judged" in v.sentences[0]


def test_per_layer_change_and_worst_layer():
    mm = _curve([4, 8, 16], [2.0, 2.0, 2.0], layers=[[4.0, 1.0], [5.0, 1.0], [4.5, 1.0]])
    s = ep_invariance([_scan(mm)]).summary[0]
    assert s["verdict"] == "intrinsic" and s["layer_change_max"] == pytest.approx(0.25)
    assert s["worst_layer"] == 0 and s["layers_over"] == 1


def test_placement_removal_hand_computed():
    base = _curve([4, 8], [1.2, 2.0])
    v = ep_invariance(
        [
            _scan(
                _curve([4, 8], [3.0, 3.0]),
                base,
                eplb=_curve([4, 8], [1.1, 1.25]),
                round_robin=_curve([4, 8], [1.3, 2.2]),
            )
        ],
        placements=("contiguous", "eplb", "round_robin"),
    )
    rem = {(r["placement"], r["ep"]): r["fraction_removed"] for r in v.tables["removal"]}
    assert rem[("eplb", 8)] == pytest.approx(0.75) and rem[("eplb", 4)] == pytest.approx(0.5)
    assert rem[("round_robin", 8)] == pytest.approx(-0.2)
    text = " ".join(v.sentences)
    assert "At that largest N, eplb removes 75.0% and round_robin adds 20.0% of the contiguous skew's" in text
    assert (
        "rose with N in 1 of 1 run(s): under real text it was 1.200 at each run's smallest judged N and 2.000" in text
    )
    assert v.evidence[1]["skew_eplb"] == pytest.approx(1.25)


def _run(tmp_path, counts, name="prose", kind="real"):
    return open_run(write_counts_run(tmp_path / name, counts, model="m", condition=name, kind=kind, seq_len=8))


def test_identical_sequences_are_intrinsic(tmp_path):
    row = np.array([[9, 1, 1, 1, 3, 1, 1, 7]] * 2, dtype=np.uint32)  # [L=2, E=8]
    run = _run(tmp_path, np.broadcast_to(row, (48, 2, 8)).copy())
    s = scan(run, FindingsOptions(ep=(2, 4, 8), ep_batch=1, placement=("contiguous",), n_boot=50))
    v = ep_invariance([s])
    assert v.verdict == "intrinsic" and v.summary[0]["max_mean_change"] == pytest.approx(0.0, abs=1e-12)
    assert v.evidence[0]["max_mean"] == pytest.approx(9 / 3)
    assert [e["steps"] for e in v.evidence] == [24, 12, 6]  # 48 sequences in steps of N*B, all evaluated


def test_rotating_hot_expert_matches_direct_and_held_out_steps(tmp_path):
    E, S = 8, 64
    counts = np.ones((S, 1, E), dtype=np.uint32)
    counts[np.arange(S), 0, np.arange(S) % E] = 20  # each sequence has its own hot expert
    run = _run(tmp_path, counts)
    v = ep_invariance([scan(run, FindingsOptions(ep=(2, 4, 8), ep_batch=1, placement=("contiguous",), n_boot=50))])
    assert v.verdict == "placement-sensitive"
    direct = [float(max_mean(step_counts(counts, N, step_order(S, 0))).mean()) for N in (2, 4, 8)]
    assert [r["max_mean"] for r in v.evidence] == pytest.approx(direct)
    # with a fitted placement every placement is evaluated on the held-out half: 32 sequences
    s = scan(run, FindingsOptions(ep=(2, 4, 8), ep_batch=1, placement=("contiguous", "eplb"), n_boot=50))
    assert s.part == "held-out" and s.curves[("max_mean", "contiguous")].steps.tolist() == [16, 8, 4]
