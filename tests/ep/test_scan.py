"""EP scan: values equal a direct per-step computation; skips, errors and the fit/eval policy."""

import json

import numpy as np
import pytest

from dodoco.ep import ep_scan as _ep_scan
from dodoco.ep.layout import contiguous, eplb_layers, round_robin
from dodoco.ep.placements import fit_eval_split
from dodoco.ep.result import skipped_reasons
from dodoco.ep.scan_loads import expert_metrics
from dodoco.ep.steps import step_order
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import gini, max_mean
from dodoco.metrics.schema import SCHEMA


def ep_scan(*args, **kwargs):
    """The scan as its tidy table (what these tests select rows from)."""
    return _ep_scan(*args, **kwargs).to_table()


def _steps(c, P, seed=0):
    """Independent step sums: c in step_order, consecutive groups of P, remainder dropped."""
    o = c[step_order(c.shape[0], seed)].astype(np.int64)
    n = c.shape[0] // P
    return o[: n * P].reshape((n, P) + c.shape[1:]).sum(axis=1)


def _counts(S=96, L=3, E=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(0.7, 1.0, (1, L, E)) * 20, (S, L, E)).astype(np.uint32)


def _select(table, **where):
    d = {k: table.column(k).to_numpy(zero_copy_only=False) for k in table.column_names}
    m = np.ones(table.num_rows, dtype=bool)
    for k, v in where.items():
        m &= d[k] == v
    return d["value"][m]


def _direct(counts, idx, N, B, placement_of, l):
    """Per-step receiver skew, send and recv max/mean of layer l, straight from the definitions."""
    order = idx[step_order(len(idx), 0)]
    out = {"receiver_skew": [], "send_max_mean": [], "recv_max_mean": []}
    for t in range(len(idx) // (N * B)):
        seqs = counts[order[t * N * B : (t + 1) * N * B]].astype(float)
        src = seqs.reshape(N, B, *seqs.shape[1:]).sum(1)[:, l]  # [N, E]
        s = src @ placement_of(N).share
        R, d = s.sum(0), np.diag(s)
        send, recv = s.sum(1) - d, R - d
        out["receiver_skew"].append(R.max() / R.mean())
        out["send_max_mean"].append(send.max() / send.mean())
        out["recv_max_mean"].append(recv.max() / recv.mean())
    return {k: np.mean(v) for k, v in out.items()}


def test_scan_matches_direct_definitions():
    c = _counts()
    S, L, E = c.shape
    table = ep_scan(c, ep=(1, 2, 4, 8, 16), batch=(1, 2, 3), n_boot=50, placement=("contiguous", "round_robin", "eplb"))
    fit, ev = fit_eval_split(S, 0.5, 0)
    makers = {"contiguous": lambda N: contiguous(E, N), "round_robin": lambda N: round_robin(E, N)}
    for name in ("contiguous", "round_robin", "eplb"):
        idx = ev  # one policy: every placement on the held-out part when one is fitted
        for N, B in [(2, 1), (4, 2), (8, 1), (16, 3), (4, 3)]:
            if N * B > len(idx):
                continue
            for l in (0, 2):
                make = makers.get(name) or (lambda N, l=l: eplb_layers(c[fit].sum(0), N).layer(l))
                want = _direct(c, idx, N, B, make, l)
                for metric, v in want.items():
                    got = _select(table, placement=name, ep=N, batch=B, layer=l, metric=metric, statistic="mean")
                    assert got == pytest.approx([v]), (name, N, B, l, metric)


def test_per_expert_metrics_match_metrics_module():
    c = _counts()
    table = ep_scan(c, ep=(2, 4), batch=(1, 2), n_boot=50)
    steps = _steps(c, 8)  # N=4, B=2
    for name, f in (("gini", gini), ("max_mean", max_mean)):
        per_step = f(steps)  # [n, L]
        got = _select(table, ep=4, batch=2, metric=name, statistic="mean")
        assert got[0] == pytest.approx(per_step.mean(axis=1).mean())  # layer -1 first
        assert got[1:] == pytest.approx(per_step.mean(axis=0))
        p95 = _select(table, ep=4, batch=2, metric=name, statistic="p95", layer=1)
        assert p95 == pytest.approx([np.percentile(per_step[:, 1], 95)])
    lo = _select(table, ep=4, batch=2, metric="gini", statistic="ci_lo", layer=-1)
    hi = _select(table, ep=4, batch=2, metric="gini", statistic="ci_hi", layer=-1)
    mean = _select(table, ep=4, batch=2, metric="gini", statistic="mean", layer=-1)
    assert lo[0] <= mean[0] <= hi[0]


def test_expert_metrics_chunked_equals_whole():
    c = _counts(S=40, E=64)
    m = expert_metrics(c, threads=2)
    assert np.allclose(m["gini"], gini(c)) and np.allclose(m["max_mean"], max_mean(c))


def test_table_schema_and_single_rank_rows():
    table = ep_scan(_counts(), ep=(1, 4), batch=(2,), n_boot=20, model="m", condition="prose", seq_len=64)
    assert table.schema.remove_metadata() == SCHEMA
    assert set(table.column("regime").to_pylist()) == {"prefill"}
    assert set(table.column("model").to_pylist()) == {"m"}
    for stat in ("mean", "p50", "p95", "ci_lo", "ci_hi"):
        assert np.all(_select(table, ep=1, metric="receiver_skew", statistic=stat) == 1.0)
    assert _select(table, ep=1, metric="send_max_mean").size == 0  # no traffic on one rank
    assert _select(table, ep=4, metric="send_max_mean").size == 6 * 4  # 6 stats x (L + 1)
    assert set(_select(table, ep=4, statistic="n_steps")) == {96 // 8}


def test_too_few_sequences_skipped_or_error_naming_count():
    c = _counts(S=20)
    table = ep_scan(c, ep=(2, 8), batch=(1, 4), n_boot=20)
    reasons = skipped_reasons(table)
    assert [(r["ep"], r["batch"]) for r in reasons] == [(8, 4)]
    assert "needs 32 sequences" in reasons[0]["reason"]
    assert _select(table, ep=8, batch=4).size == 0
    with pytest.raises(DodocoError, match=r"EP=8 x batch=4 needs 32 sequences per step but the run has 20"):
        ep_scan(c, ep=(8,), batch=(4,), strict=True)


def test_infeasible_placements_recorded():
    c = _counts(E=12)
    result = _ep_scan(c, ep=(8, 16), batch=(1,), placement=("contiguous", "eplb"), n_boot=20)
    reasons = result.skipped
    assert any(r["placement"] == "contiguous" and "N=16 ranks" in r["reason"] for r in reasons)
    # EPLB's default replicas (default_redundant) make N=8 and N=16 > E=12 hold
    assert not any(r["placement"] == "eplb" for r in reasons)
    assert result.meta["redundant"] == {"eplb,8": 4, "eplb,16": 4}
    assert result.value(1, 16, "eplb", "receiver_skew") >= 1.0
    table = ep_scan(c, ep=(8,), batch=(1,), placement="eplb", num_redundant=1, n_boot=20)
    assert any(r["placement"] == "eplb" and "do not divide" in r["reason"] for r in skipped_reasons(table))
    with pytest.raises(DodocoError, match="N=16 ranks is more than E=12"):
        ep_scan(c, ep=(16,), batch=(1,), strict=True)


def test_fit_eval_split_and_one_evaluation_part():
    fit, ev = fit_eval_split(11, 0.5, 0)
    assert len(fit) == 6 and len(ev) == 5 and not set(fit) & set(ev)
    assert sorted(set(fit) | set(ev)) == list(range(11))
    with pytest.raises(DodocoError, match="empty"):
        fit_eval_split(1, 0.5)
    c = _counts()
    both = ep_scan(c, ep=(4,), batch=(2,), placement=("contiguous", "eplb"), n_boot=20)
    meta = json.loads(both.schema.metadata[b"ep_scan"])
    assert meta["part"] == "held-out" and meta["fit_frac"] == 0.5
    # both placements are evaluated on the same held-out steps: identical per-expert metrics
    a = _select(both, placement="contiguous", metric="gini")
    b = _select(both, placement="eplb", metric="gini")
    assert np.array_equal(a, b)
    alone = ep_scan(c, ep=(4,), batch=(2,), n_boot=20)
    assert json.loads(alone.schema.metadata[b"ep_scan"])["part"] == "all"
    # EPLB fitted on one half improves the held-out receiver skew over contiguous here
    rho_c = _select(both, placement="contiguous", metric="receiver_skew", statistic="mean")[0]
    rho_e = _select(both, placement="eplb", metric="receiver_skew", statistic="mean")[0]
    assert rho_e < rho_c


def test_replicated_eplb_reports_physical_max_mean():
    c = _counts()
    table = ep_scan(c, ep=(4,), batch=(2,), placement="eplb", num_redundant=4, n_boot=20)
    phys = _select(table, metric="max_mean_phys", statistic="mean", layer=-1)[0]
    logical = _select(table, metric="max_mean", statistic="mean", layer=-1)[0]
    assert phys < logical


@pytest.mark.parametrize("ep", [(3, 6, 12), (3, 4, 12, 24), (5, 7)])
def test_scan_any_ep_set_matches_direct(ep):
    c = _counts(S=72, E=24, seed=2)
    table = ep_scan(c, ep=ep, batch=(1, 2), n_boot=20, placement=("contiguous", "round_robin"))
    makers = {"contiguous": lambda N: contiguous(24, N), "round_robin": lambda N: round_robin(24, N)}
    for name, make in makers.items():
        for N in ep:
            for B in (1, 2):
                want = _direct(c, np.arange(72), N, B, make, 1)
                for metric, v in want.items():
                    got = _select(table, placement=name, ep=N, batch=B, layer=1, metric=metric, statistic="mean")
                    assert got == pytest.approx([v]), (name, N, B, metric)


def test_scan_with_nothing_feasible_is_empty_with_reasons():
    counts = np.ones((4, 2, 16), np.uint32)
    table = ep_scan(counts, ep=(8,), batch=(1,), model="m", condition="c", seq_len=8)
    assert table.num_rows == 0
    assert [(r["ep"], r["batch"]) for r in skipped_reasons(table)] == [(8, 1)]


def test_scan_sums_in_64_bits_on_uint32_counts():
    """Steps of two units whose counts pass 2^32: a uint32 sum would wrap and change every value."""
    big = 3_000_000_000
    c = np.zeros((4, 1, 4), np.uint32)
    c[:, 0] = [[big, 1, 0, 5], [big, 0, 3, 0], [1, big, 0, 0], [2, big, 7, 1]]
    r = _ep_scan(c, ep=(2,), batch=(1, 2), placement="contiguous", n_boot=10)
    for B in (1, 2):
        steps = _steps(c, 2 * B)  # int64: independent of the scan's dtypes
        R = steps[..., :2].sum(-1), steps[..., 2:].sum(-1)  # contiguous E=4 on N=2
        rho = np.maximum(*R) / ((R[0] + R[1]) / 2)
        assert r.value(B, 2, "contiguous", "receiver_skew", layer=0) == pytest.approx(rho.mean())
        assert r.value(B, 2, "contiguous", "gini", layer=0) == pytest.approx(gini(steps).mean())
