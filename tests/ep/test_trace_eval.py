"""Held-out evaluation of placements on token traces: steps by hand, traffic against the core's
dedup_traffic and against explicit sets, savings on planted co-activation."""

import numpy as np
import pytest

from dodoco.ep.layout import eplb_layers
from dodoco.ep.steps import source_of, step_order
from dodoco.ep.trace_eval import TraceEvalOptions, evaluate_placements, step_tokens, traffic_per_step
from dodoco.ep.traffic import dedup_traffic
from dodoco.errors import DodocoError
from tests.ep.test_coactivation import random_trace


def _units(S: int, seed: int):
    """A step source over S units (their counts do not matter to where they go)."""
    return source_of(np.ones((S, 1, 1), np.uint32), seed)


def test_step_tokens_by_hand():
    offsets = np.array([0, 2, 5, 6, 8])  # lengths 2, 3, 1, 2
    tok, step, src, n = step_tokens(_units(4, 3), offsets, N=2, B=1, regime="prefill")
    order = step_order(4, 3)  # the j-th unit of the steps is order[j]: step j // 2, rank j % 2
    expect = sorted((t, j // 2, j % 2) for j, u in enumerate(order) for t in range(offsets[u], offsets[u + 1]))
    assert n == 2 and sorted(zip(tok.tolist(), step.tolist(), src.tolist())) == expect
    # decode at positions 0 and 1 (the shortest unit has 2 tokens), steps position-major
    offsets = np.array([0, 2, 5, 7])
    tok, step, src, n = step_tokens(_units(3, 0), offsets, N=1, B=3, regime="decode", positions=2)
    assert n == 2 and sorted(zip(tok.tolist(), step.tolist())) == sorted(
        (offsets[u] + p, p) for p in (0, 1) for u in range(3)
    )
    assert src.tolist() == [0] * 6
    with pytest.raises(DodocoError, match="needs 8 sequences per step but the held-out part has 3"):
        step_tokens(_units(3, 0), offsets, N=8, B=1, regime="prefill")


def test_traffic_matches_core_dedup_and_explicit_sets():
    E, N = 12, 3
    topk = random_trace(240, 3, 3, E, seed=1)
    offsets = np.arange(0, 241, 10)  # 24 sequences of 10 tokens
    tok, step, src, n = step_tokens(_units(24, 0), offsets, N=N, B=2, regime="prefill")
    load = np.stack([np.bincount(topk[:, l].ravel(), minlength=E) for l in range(3)])
    p = eplb_layers(load, N)
    got = traffic_per_step(topk, tok, step, src, n, p, E)
    for t in range(n):
        sel = step == t
        dedup, forward = 0, 0
        for l in range(3):
            by_rank = [topk[tok[sel & (src == i)], l] for i in range(N)]
            s = dedup_traffic(by_rank, p.layer(l))
            dedup += s.sum() - np.trace(s)  # off-diagonal: crosses a link
            R = np.bincount(topk[tok[sel], l].ravel(), minlength=E) @ p.layer(l).share
            assert np.isclose(got["receiver_skew"][t, l], R.max() / R.mean())
        for i_tok, i_src in zip(tok[sel], src[sel]):
            prev = {i_src}
            for l in range(3):
                ranks = {int(p.layer(l).rank_of[e]) for e in topk[i_tok, l]}
                forward += len(ranks - prev)
                prev = ranks
        assert got["dedup"][t] == dedup and got["forward"][t] == forward


def test_planted_coactivation_is_saved_held_out():
    # tokens pick their 4 experts inside one of 4 fixed groups of 4 (scattered indices): packing
    # each group on one rank sends a token to one rank instead of up to four
    E, K, rng = 16, 4, np.random.default_rng(2)
    groups = rng.permutation(E).reshape(4, 4)
    g = rng.integers(0, 4, (6400, 2))
    topk = np.stack([np.stack([rng.permutation(groups[x])[:K] for x in g[:, l]]) for l in range(2)], axis=1).astype(
        np.uint8
    )
    offsets = np.arange(0, 6401, 50)
    opts = TraceEvalOptions(ep=(4, 5), regimes=("prefill",), slack=0.5, n_boot=200)
    rows, skipped = evaluate_placements(topk, offsets, E, opts)
    by = {(r["ep"], r["placement"]): r for r in rows}
    assert by[(4, "eplb")]["dedup_saving"] == 0
    coact = by[(4, "coact")]
    assert coact["dedup_saving_lo"] > 0.3 and coact["dedup_saving"] <= coact["dedup_saving_hi"]
    assert coact["max_mean"] == by[(4, "eplb")]["max_mean"]  # placement-independent
    assert {(N, name) for N, name, _ in skipped} >= {(5, "coact"), (5, "affinity")}


def write_trace_run(path, topk, offsets, E, model="synthetic", condition="prose"):
    """A complete run directory with token traces, written by the store's RunWriter."""
    from dodoco.findings.synthetic import synthetic_manifest
    from dodoco.store import manifest as m
    from dodoco.store.writer import RunWriter

    S, L, K = offsets.size - 1, topk.shape[1], topk.shape[2]
    counts = np.stack(
        [
            np.stack([np.bincount(topk[offsets[s] : offsets[s + 1], l].ravel(), minlength=E) for l in range(L)])
            for s in range(S)
        ]
    )
    writer = RunWriter(path, {"model": model, "condition": condition, "traces": True}, origin=m.Origin.SYNTHETIC)
    writer.write_part(0, counts.astype(np.uint32), np.diff(offsets), topk)
    shape = dict(E=E, K=K, L=L, seq_len=int(np.diff(offsets).max()), sequences=S)
    writer.finalize(synthetic_manifest(model, condition, "real", **shape))
    from dodoco.store import open_run

    return open_run(path)


def test_trace_summary_of_a_run_directory(tmp_path):
    from dodoco.ep.trace_summary import TraceOptions, trace_summary

    E = 16
    rng = np.random.default_rng(4)
    groups = rng.permutation(E).reshape(8, 2)  # experts chosen in fixed pairs
    g = rng.integers(0, 8, (64 * 32, 2))
    topk = np.stack([groups[g[:, 0]], groups[(g[:, 0] + g[:, 1] % 2) % 8]], axis=1).astype(np.uint8)
    run = write_trace_run(tmp_path / "run", topk, np.arange(0, 64 * 32 + 1, 32), E)
    s = trace_summary([run], TraceOptions(ep=(4, 8), rebalance_ep=4, n_boot=100, migrate_gbps=(1.0,)))
    assert [r["layer"] for r in s.coactivation] == [0, 1] and len(s.affinity) == 1
    assert s.coactivation[0]["tv"] > 5 * s.coactivation[0]["tv_noise"]
    assert s.affinity[0]["uncertainty_coef"] > 10 * s.affinity[0]["uncertainty_coef_shuffled"]
    coact = [r for r in s.placements if r["placement"] == "coact" and r["regime"] == "prefill"]
    assert {r["ep"] for r in coact} == {4, 8} and all(r["dedup_saving_lo"] > 0 for r in coact)
    assert {r["k"] for r in s.rebalance} >= {1, 8, "never", "oracle"} and s.rebalance_best
    key = "synthetic / prose"
    assert s.heatmaps[key][0].shape == (E, E) and s.transitions[key][0].shape == (E, E)


def test_bad_traces_name_the_fix():
    topk = random_trace(40, 2, 2, 8)
    with pytest.raises(DodocoError, match="offsets must run non-decreasing from 0 to T=40"):
        evaluate_placements(topk, np.arange(0, 41, 5)[:-1], 8)
    with pytest.raises(DodocoError, match="expert 7 but E=6"):
        evaluate_placements(topk, np.arange(0, 41, 5), 6)


def test_expert_shape_from_options_then_manifest_then_nominal(tmp_path):
    import dataclasses

    from dodoco.ep.trace_summary import TraceOptions, expert_shape

    run = write_trace_run(tmp_path / "r", random_trace(40, 2, 2, 8), np.arange(0, 41, 10), 8)
    assert expert_shape(run, TraceOptions())[:2] == (2048, 768)
    assert expert_shape(run, TraceOptions())[2].startswith("nominal")
    assert expert_shape(run, TraceOptions(hidden=7168, intermediate=2048)) == (7168, 2048, "given")
    model = dataclasses.replace(run.manifest.model, details={"hidden_size": 4096, "moe_intermediate_size": 1536})
    run.manifest = dataclasses.replace(run.manifest, model=model)
    assert expert_shape(run, TraceOptions()) == (4096, 1536, "manifest")


def test_migration_moves_two_matrices_of_an_ungated_expert(tmp_path):
    """A run whose manifest records ReLU^2 experts (Nemotron-H) migrates up and down only: 2 H I bytes per
    element, against 3 H I for SwiGLU of the same H and I."""
    import dataclasses

    from dodoco.ep.trace_summary import TraceOptions, trace_summary

    run = write_trace_run(tmp_path / "r", random_trace(64 * 16, 2, 2, 8), np.arange(0, 64 * 16 + 1, 16), 8)
    eb = {}
    for act in ("relu2", "swiglu"):
        details = {"hidden_size": 64, "moe_intermediate_size": 32, "expert_act": act}
        run.manifest = dataclasses.replace(run.manifest, model=dataclasses.replace(run.manifest.model, details=details))
        s = trace_summary([run], TraceOptions(ep=(4,), rebalance_ep=4, n_boot=10, migrate_gbps=(1.0,)))
        eb[act] = {r["expert_bytes"] for r in s.rebalance}
    assert eb == {"relu2": {2 * 64 * 32 * 2}, "swiglu": {3 * 64 * 32 * 2}}
