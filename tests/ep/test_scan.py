"""EP scan: values equal a direct per-step computation; skips, errors and the fit/eval split."""

import json

import numpy as np
import pytest

from dodoco.ep.placement import contiguous, eplb_layers, round_robin
from dodoco.ep.scan import (
    ep_scan,
    expert_metrics,
    fit_eval_split,
    require_sequences,
    scan_source,
    skipped_reasons,
)
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import gini, max_mean
from dodoco.metrics.steps import step_counts, step_order
from dodoco.metrics.table import SCHEMA


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
        seqs = counts[order[t * N * B:(t + 1) * N * B]].astype(float)
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
    table = ep_scan(c, ep=(1, 2, 4, 8, 16), batch=(1, 2, 3), n_boot=50,
                    placement=("contiguous", "round_robin", "eplb"), common_eval=False)
    fit, ev = fit_eval_split(S, 0.5, 0)
    makers = {"contiguous": lambda N: contiguous(E, N), "round_robin": lambda N: round_robin(E, N)}
    for name in ("contiguous", "round_robin", "eplb"):
        idx = ev if name == "eplb" else np.arange(S)
        for N, B in [(2, 1), (4, 2), (8, 1), (16, 3), (4, 3)]:
            if N * B > len(idx):
                continue
            for l in (0, 2):
                make = makers.get(name) or (lambda N, l=l: eplb_layers(
                    c[fit].sum(0), N).layer(l))
                want = _direct(c, idx, N, B, make, l)
                for metric, v in want.items():
                    got = _select(table, placement=name, ep=N, batch=B, layer=l, metric=metric,
                                  statistic="mean")
                    assert got == pytest.approx([v]), (name, N, B, l, metric)


def test_per_expert_metrics_match_metrics_module():
    c = _counts()
    table = ep_scan(c, ep=(2, 4), batch=(1, 2), n_boot=50)
    steps = step_counts(c, 8, step_order(c.shape[0], 0))  # N=4, B=2
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


def test_source_levels_equal_step_counts():
    c = _counts(S=50)
    src = scan_source(c, seed=3)
    for P in (1, 2, 4, 6, 12):
        assert np.array_equal(src.steps(P), step_counts(c, P, step_order(50, 3)))


def test_table_schema_and_single_rank_rows():
    table = ep_scan(_counts(), ep=(1, 4), batch=(2,), n_boot=20, model="m", condition="prose",
                    seq_len=64)
    assert table.schema.remove_metadata() == SCHEMA
    assert set(table.column("regime").to_pylist()) == {"prefill"}
    assert set(table.column("model").to_pylist()) == {"m"}
    assert np.all(_select(table, ep=1, metric="receiver_skew") == 1.0)
    assert _select(table, ep=1, metric="send_max_mean").size == 0  # no traffic on one rank
    assert _select(table, ep=4, metric="send_max_mean").size == 5 * 4  # 5 stats x (L + 1)


def test_too_few_sequences_skipped_or_error_naming_count():
    c = _counts(S=20)
    table = ep_scan(c, ep=(2, 8), batch=(1, 4), n_boot=20)
    reasons = skipped_reasons(table)
    assert [(r["ep"], r["batch"]) for r in reasons] == [(8, 4)]
    assert "needs 32 sequences" in reasons[0]["reason"]
    assert _select(table, ep=8, batch=4).size == 0
    with pytest.raises(DodocoError, match=r"needs 32 sequences per step.*has 20"):
        ep_scan(c, ep=(8,), batch=(4,), strict=True)
    with pytest.raises(DodocoError, match=r"EP=16 x batch=2 needs 32 sequences"):
        require_sequences(20, 16, 2)
    require_sequences(32, 16, 2)


def test_infeasible_placements_recorded():
    c = _counts(E=12)
    table = ep_scan(c, ep=(8, 16), batch=(1,), placement=("contiguous", "eplb"), n_boot=20)
    reasons = skipped_reasons(table)
    assert any(r["placement"] == "contiguous" and "N=16 ranks" in r["reason"] for r in reasons)
    assert any(r["placement"] == "eplb" and "do not divide" in r["reason"] for r in reasons)
    with pytest.raises(DodocoError, match="N=16 ranks is more than E=12"):
        ep_scan(c, ep=(16,), batch=(1,), strict=True)


def test_fit_eval_split_and_common_evaluation():
    fit, ev = fit_eval_split(11, 0.5, 0)
    assert len(fit) == 6 and len(ev) == 5 and not set(fit) & set(ev)
    assert sorted(set(fit) | set(ev)) == list(range(11))
    with pytest.raises(DodocoError, match="empty"):
        fit_eval_split(1, 0.5)
    c = _counts()
    both = ep_scan(c, ep=(4,), batch=(2,), placement=("contiguous", "eplb"), n_boot=20)
    meta = json.loads(both.schema.metadata[b"ep_scan"])
    assert meta["eval"] == {"contiguous,eplb": "heldout"}
    # with common_eval both placements see the same steps: identical per-expert metrics
    a = _select(both, placement="contiguous", metric="gini")
    b = _select(both, placement="eplb", metric="gini")
    assert np.array_equal(a, b)
    alone = ep_scan(c, ep=(4,), batch=(2,), n_boot=20)
    assert json.loads(alone.schema.metadata[b"ep_scan"])["eval"] == {"contiguous": "all"}
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
                    got = _select(table, placement=name, ep=N, batch=B, layer=1, metric=metric,
                                  statistic="mean")
                    assert got == pytest.approx([v]), (name, N, B, metric)


def test_scan_with_nothing_feasible_is_empty_with_reasons():
    import numpy as np

    from dodoco.ep.scan import ep_scan, skipped_reasons

    counts = np.ones((4, 2, 16), np.uint32)
    table = ep_scan(counts, ep=(8,), batch=(1,), model="m", condition="c", seq_len=8)
    assert table.num_rows == 0
    assert [(r["ep"], r["batch"]) for r in skipped_reasons(table)] == [(8, 1)]
