"""NeuSim export: the receiver-skew formula on the PR's own anchors, and the trace estimators."""

import json

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.simulate.neusim import (
    effective_factor,
    effective_tokens,
    experts_on_worst_case_device,
    neusim_export,
    neusim_predicted_skew,
    neusim_table,
    worst_case_experts,
)


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
    table = neusim_table(c, K=2, ep=(1, 2, 4, 8), batch=(1, 2), model="m", condition="prose")
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
            want = neusim_predicted_skew(16, 2, r["ep"], r["expert_load_imbalance_factor"],
                                         r["num_worst_case_experts"])
            assert r["predicted_skew"] == pytest.approx(want)
    out = neusim_export(table, E=16, K=2)
    json.dumps(out)
    assert out["expert_parallelism_degree"] == 8 and out["derived_at"]["batch"] == 1
    assert set(out["config"]) == {"expert_load_imbalance_factor", "num_worst_case_experts"}
    with pytest.raises(DodocoError, match="EP=3"):
        neusim_export(table, 16, 2, ep=3)


def test_neusim_table_decode_regime():
    from dodoco.ep.decode import decode_source

    rng = np.random.default_rng(0)
    S, T_seq, L, E, K = 16, 4, 2, 8, 2
    topk = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(L)])
                     for _ in range(S * T_seq)]).astype(np.uint8)
    src = decode_source(topk, np.arange(S + 1) * T_seq, E, positions=np.array([0, 3]))
    table = neusim_table(None, K, ep=(2, 4), batch=(1,), source=src, regime="decode")
    rows = table.to_pylist()
    assert [r["ep"] for r in rows] == [2, 4] and rows[0]["regime"] == "decode"
    assert rows[0]["steps"] == 2 * (S // 2)  # two positions x steps of 2 sequences
    assert rows[0]["tokens_per_step"] == pytest.approx(2.0)
