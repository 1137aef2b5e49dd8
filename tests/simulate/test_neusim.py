"""NeuSim export: the receiver-skew formula on the PR's own anchors, and the trace estimators."""

import json

import numpy as np
import pytest

from dodoco.ep.steps import source_of, window_source
from dodoco.errors import DodocoError
from dodoco.simulate.neusim import (
    effective_factor,
    effective_params,
    effective_tokens,
    experts_on_worst_case_device,
    neusim_predicted_skew,
    neusim_table,
    solve_factor,
    worst_case_experts,
)
from dodoco.simulate.neusim_export import default_ep, neusim_export


def test_worst_case_device_holds_ceil_experts():
    # the PR's helper anchors: divisible, indivisible rounds up, EP > E gives one expert
    assert experts_on_worst_case_device(256, 8) == 32
    assert experts_on_worst_case_device(256, 1) == 256
    assert experts_on_worst_case_device(10, 3) == 4
    assert experts_on_worst_case_device(256, 7) == 37
    assert experts_on_worst_case_device(8, 16) == 1
    assert experts_on_worst_case_device(256, 512) == 1


def test_skew_is_one_without_expert_parallelism():
    assert neusim_predicted_skew(256, 8, 1, -1.0, 1, 256) == 1.0


def test_balanced_load_gives_unit_skew_at_any_token_count():
    # regression anchor of the PR: the unfloored model gives 1.0 even at T = 1 (decode)
    for T in (1, 2, 8, 16, 256):
        assert neusim_predicted_skew(256, 8, 8, 1.0, 1, T) == pytest.approx(1.0)


def test_worst_case_anchor():
    # T=256, E=256, K=8, EP=8, W=1, f=-1 -> E/K: skew = 120832 / 65280
    assert neusim_predicted_skew(256, 8, 8, -1.0, 1, 256) == pytest.approx(120832 / 65280)


def test_ep_not_dividing_e_anchor():
    # E=10, K=2, EP=3, f=-1 (5), W=1: ceil(10/3) = 4 experts -> skew 2.0 (floor would give 11/6)
    assert neusim_predicted_skew(10, 2, 3, -1.0, 1, 64) == pytest.approx(2.0)


def test_intermediate_factor_multiple_worst_case_experts_anchor():
    # f=4, W=4, T=256, E=256, K=8, EP=8 -> 4/3
    assert neusim_predicted_skew(256, 8, 8, 4.0, 4, 256) == pytest.approx(4 / 3)


def test_skew_never_below_one_and_tokens_cancel():
    for ep in (2, 4, 8, 16):
        assert neusim_predicted_skew(256, 8, ep, -1.0, 1, 128) >= 1.0
    a = neusim_predicted_skew(64, 4, 8, 3.0, 2, 7)
    assert neusim_predicted_skew(64, 4, 8, 3.0, 2, 7000) == pytest.approx(a)


def test_factor_validation_and_floored_tokens():
    assert effective_factor(256, 8, -1.0) == 32.0
    with pytest.raises(DodocoError, match=r"\[1, E/K = 32\]"):
        effective_factor(256, 8, 40.0)
    with pytest.raises(DodocoError, match=r"\[1, K=8\]"):
        neusim_predicted_skew(256, 8, 8, 2.0, 9)
    assert effective_tokens(64, 256, 8, -1.0) == 64  # the hot expert takes all T tokens
    assert effective_tokens(1, 256, 8, 1.0) == 1  # >= 1 floor applies here only


def test_worst_case_experts_estimator_by_hand():
    # mean 2; one expert at 8: D+ = 6, max - mean = 6 -> W = 1
    assert worst_case_experts(np.array([[[8, 0, 0, 0]]]))[0, 0] == pytest.approx(1.0)
    # two experts at the max: D+ = 2 * 3 = 6, max - mean = 3 -> W = 2
    assert worst_case_experts(np.array([[[5, 5, 0, 0]]]))[0, 0] == pytest.approx(2.0)


def _counts(S=64, L=2, E=16, seed=0):
    rng = np.random.default_rng(seed)
    lam = np.full((L, E), 5.0)
    lam[:, 0] = 40.0
    return rng.poisson(lam, (S, L, E))


def test_neusim_table_and_export():
    c = _counts()
    table = neusim_table(source_of(c), K=2, ep=(1, 2, 4, 8), batch=(1, 2), model="m", condition="prose")
    rows = table.to_pylist()
    assert {(r["ep"], r["batch"]) for r in rows} == {(n, b) for n in (1, 2, 4, 8) for b in (1, 2)}
    for r in rows:
        assert 1.0 <= r["expert_load_imbalance_factor"] <= 16 / 2
        assert 1 <= r["num_worst_case_experts"] <= 2
        assert r["model"] == "m" and r["regime"] == "prefill"
        if r["ep"] == 1:
            assert r["predicted_skew"] == 1.0 and r["measured_skew"] == 1.0
        else:
            assert r["measured_skew"] > 1.0
            want = neusim_predicted_skew(16, 2, r["ep"], r["expert_load_imbalance_factor"], r["num_worst_case_experts"])
            assert r["predicted_skew"] == pytest.approx(want)
    out = neusim_export(table, E=16, K=2, ep=8, batch=1)
    json.dumps(out)
    assert out["expert_parallelism_degree"] == 8 and out["derived_at"]["batch"] == 1
    assert set(out["config"]) == {"expert_load_imbalance_factor", "num_worst_case_experts"}
    assert out["effective"]["predicted_skew"] == pytest.approx(out["skew"]["measured"], rel=1e-9)
    assert out["measured"]["label"].startswith("measured") and out["effective"]["label"].startswith("effective")
    with pytest.raises(DodocoError, match="EP=3"):
        neusim_export(table, 16, 2, ep=3, batch=1)


def test_neusim_table_decode_regime():
    from dodoco.ep.decode import decode_source

    rng = np.random.default_rng(0)
    S, T_seq, L, E, K = 16, 4, 2, 8, 2
    topk = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(L)]) for _ in range(S * T_seq)]).astype(
        np.uint8
    )
    src = decode_source(topk, np.arange(S + 1) * T_seq, E, positions=np.array([0, 3]))
    table = neusim_table(src, K, ep=(2, 4), batch=(1,), regime="decode")
    rows = table.to_pylist()
    assert [r["ep"] for r in rows] == [2, 4] and rows[0]["regime"] == "decode"
    assert rows[0]["steps"] == 2 * (S // 2)  # two positions x steps of 2 sequences
    assert rows[0]["tokens_per_step"] == pytest.approx(2.0)


def _neusim_profile(E, W, f, c, S=64, L=2, hot=None):
    """Counts drawn from NeuSim's own model: W hot experts at f * mean, the rest equal (mean c per
    sequence and layer); hot experts where ``hot`` says (default 0..W-1, NeuSim's worst device)."""
    rem = (E * c - W * f * c) / (E - W)
    assert rem == int(rem)
    seq = np.full(E, int(rem))
    seq[list(hot if hot is not None else range(W))] = int(f * c)
    return np.broadcast_to(seq, (S, L, E)).astype(np.uint32)


@pytest.mark.parametrize("W,f,c", [(2, 2.0, 124), (3, 3.0, 61), (1, 6.0, 63)])
def test_effective_params_recover_neusim_own_model(W, f, c):
    E, K, eps = 64, 4, (4, 8, 16, 32, 64)
    table = neusim_table(source_of(_neusim_profile(E, W, f, c)), K, ep=eps, batch=(1,)).to_pylist()
    measured = {r["ep"]: r["measured_skew"] for r in table}
    for ep, m in measured.items():  # the traffic reproduces NeuSim's formula at every EP
        assert m == pytest.approx(neusim_predicted_skew(E, K, ep, f, W), rel=1e-12)
    for at in eps[:-1]:
        # EP 64 holds one expert per device, fewer than W: it identifies W even from a wrong hint
        got = effective_params(E, K, measured, at, w_hint=K)
        assert got["num_worst_case_experts"] == W and got["expert_load_imbalance_factor"] == pytest.approx(f, rel=1e-9)
        assert max(abs(v) for v in got["residual_pct"].values()) < 1e-7
    # without EP 64 the skews of (f, W) and (f', W') with W (f-1)/(E-W) equal coincide: the measured
    # hot-expert count (the table's W estimate) settles it
    short = {ep: m for ep, m in measured.items() if ep <= 32 and ep * W <= E}
    got = effective_params(E, K, short, 8, w_hint=table[0]["w_estimate"])
    assert (got["num_worst_case_experts"], round(got["expert_load_imbalance_factor"], 9)) == (W, f)


def test_effective_params_reproduce_skew_where_measured_ones_overshoot():
    # four hot experts spread over the devices (experts 0, 16, 32, 48): NeuSim's formula with the
    # measured f, W stacks them on one device and overshoots; the effective pair matches at EP 8
    E, K = 64, 4
    counts = _neusim_profile(E, 4, 3.0, 60, hot=[0, 16, 32, 48])
    out = neusim_export(neusim_table(source_of(counts), K, ep=(4, 8, 16, 32), batch=(1,)), E, K, ep=8, batch=1)
    assert out["measured"]["expert_load_imbalance_factor"] == pytest.approx(3.0)
    assert out["measured"]["num_worst_case_experts"] == 4
    assert out["measured"]["predicted_skew"] > 1.5 * out["skew"]["measured"]
    assert out["effective"]["predicted_skew"] == pytest.approx(out["skew"]["measured"], rel=1e-9)
    assert out["effective"]["expert_load_imbalance_factor"] < 3.0
    assert [r["ep"] for r in out["by_ep"]] == [4, 8, 16, 32]
    assert all(r["effective_residual_pct"] is not None for r in out["by_ep"])


def test_solve_factor_is_exact_and_clipped():
    f = solve_factor(256, 8, 8, 1.5, 2)
    assert neusim_predicted_skew(256, 8, 8, f, 2) == pytest.approx(1.5, rel=1e-12)
    assert solve_factor(256, 8, 8, 100.0, 1) == 32.0  # beyond what one hot expert can do: E/K
    assert solve_factor(256, 8, 8, 0.5, 1) == 1.0


def test_default_ep_is_the_largest_paper_ep_that_fits_never_e():
    def units(S):
        return source_of(np.ones((S, 1, 1), np.uint32))

    assert default_ep(128, units(64), 1) == 32
    assert default_ep(16, units(64), 1) == 8  # never E = 16
    assert default_ep(128, units(8), 2) == 4  # a step of EP x 2 needs 2 EP units
    assert default_ep(8, window_source(np.ones((1, 1, 8), np.uint32)), 1) == 4  # a window: one step at every EP
    with pytest.raises(DodocoError, match="no EP degree of \\[4, 8, 16, 32\\] is below E=4"):
        default_ep(4, units(100), 1)
