"""Whole-layer simulation: dispatch + the busiest rank's expert compute (the compute model) + combine."""

import numpy as np
import pytest

from dodoco.compute.features import ExpertShape
from dodoco.compute.model import ComputeModel
from dodoco.simulate.cluster import AlltoallTimer, Cluster
from dodoco.simulate.layer import simulate_ep

SHAPE = ExpertShape(256, 64)
# a hand-set model: 0.01 ms per launch + 0.002 ms per non-empty expert + 1 ms per padded GFLOP (tile 16)
H200_GROUPED = ("h200", "NVIDIA H200", "grouped_mm", "linear", 16, 128, 132)  # gpu, device, kernel, form, tiles, SMs
MODEL = ComputeModel(*H200_GROUPED, np.array([0.01, 0.002, 0.0, 1.0, 0.0]), {"torch": "2.11", "date": "2026-12-06"})
TIMER = AlltoallTimer(Cluster(name="t", gpus_per_node=4, nvlink_bw=100.0, nic_bw=10.0))


def _by_hand(loads):
    """The hand-set model on one rank's loads."""
    loads = np.asarray(loads)
    pf = (-(-loads // 16) * 16).sum() * 6 * 256 * 64 / 1e9
    return 0.01 + 0.002 * (loads > 0).sum() + pf


def test_balanced_routing_has_no_straggler_and_the_layer_adds_up():
    flat = np.full((16, 1, 8), 10, dtype=np.uint32)
    rows, skipped = simulate_ep(flat, [2, 4, 8, 16], 1, TIMER, row_bytes=1 << 20, compute=(MODEL, SHAPE))
    assert [n for n, _ in skipped] == [16]
    for r in rows:
        assert r["compute_straggler_ms"] == pytest.approx(0.0, abs=1e-12)
        assert r["compute_ms"] == pytest.approx(_by_hand(np.full(8 // r["N"], 10 * r["N"])))
        assert r["compute_balanced_ms"] == pytest.approx(r["compute_ms"])  # balanced routing: the same rank
        assert r["layer_ms"] == pytest.approx(r["dispatch_ms"] + r["compute_ms"] + r["combine_ms"])
        assert r["balanced_layer_ms"] == pytest.approx(
            r["balanced_ms"] + r["compute_balanced_ms"] + r["balanced_combine_ms"]
        )


def test_busiest_rank_by_hand_and_straggler_never_negative():
    rng = np.random.default_rng(0)
    counts = rng.poisson(np.r_[80.0, 40.0, np.full(6, 5.0)], (8, 1, 8)).astype(np.uint32)
    rows, _ = simulate_ep(counts, [2, 4], 2, TIMER, row_bytes=1 << 20, compute=(MODEL, SHAPE), seed=3)
    from dodoco.ep.steps import source_of

    for r in rows:
        steps = source_of(counts, 3).steps(r["N"] * 2)[:, 0, :]  # [n, E]
        per_rank = [
            np.array([_by_hand(s[k * (8 // r["N"]) : (k + 1) * (8 // r["N"])]) for k in range(r["N"])]) for s in steps
        ]
        assert r["compute_ms"] == pytest.approx(np.mean([p.max() for p in per_rank]))
        assert r["compute_mean_ms"] == pytest.approx(np.mean([p.mean() for p in per_rank]))
        assert r["compute_straggler_ms"] > 0


def test_a_fitted_placement_is_simulated_on_the_held_out_half_only():
    """Steps of a fitted placement come from the held-out sequences: a run whose fit half is balanced
    and whose held-out half is hot must show the hot half's straggler."""
    from dodoco.ep.placements import fit_eval_split

    S = 16
    fit_idx, eval_idx = fit_eval_split(S, 0.5, 0)
    counts = np.full((S, 1, 8), 10, dtype=np.uint32)
    counts[eval_idx, 0, 0] = 200  # expert 0 hot only where the placement is evaluated
    rows, _ = simulate_ep(counts, [4], 1, TIMER, row_bytes=1 << 20, placement="eplb", compute=(MODEL, SHAPE))
    flat = counts.copy()
    flat[eval_idx, 0, 0] = 10
    cold, _ = simulate_ep(flat, [4], 1, TIMER, row_bytes=1 << 20, placement="eplb", compute=(MODEL, SHAPE))
    assert rows[0]["part"] == "held-out" and rows[0]["recv_skew"] > 1.5 > cold[0]["recv_skew"]


def test_capacity_drops_exactly_beyond_each_experts_capacity():
    from dodoco.ep.placements import build_placement
    from dodoco.replay.plan import ReplayCase
    from dodoco.simulate.layer import capped

    src = np.array([[30, 2, 0, 0], [0, 0, 9, 1]], dtype=np.int64)  # 2 source ranks, E=4: 32 and 10 assignments
    p = build_placement("contiguous", 4, 2)
    c = capped(ReplayCase("x", "real", 0, 0, np.zeros((2, 2), dtype=np.int64), src), p, 1.0)
    # capacity ceil(32/4)=8 on rank 0, ceil(10/4)=3 on rank 1
    assert c.src.tolist() == [[8, 2, 0, 0], [0, 0, 3, 1]]
    assert c.splits.tolist() == [[10, 0], [0, 4]]


def test_mitigations_are_judged_in_layer_milliseconds_on_the_held_out_half():
    from dodoco.simulate.mitigate import mitigation_rows

    rng = np.random.default_rng(1)
    counts = rng.poisson(np.r_[90.0, 60.0, np.full(14, 6.0)], (64, 2, 16)).astype(np.uint32)
    rows = mitigation_rows(counts, 4, 2, TIMER, row_bytes=1 << 12, compute=(MODEL, SHAPE), max_steps=4)
    by = {r["mitigation"]: r for r in rows}
    assert set(by) == {"none", "eplb", "replication", "capacity 1", "capacity 1.25", "capacity 1.5"}
    assert by["none"]["saved_ms"] == 0.0 and by["eplb"]["recv_skew"] < by["none"]["recv_skew"]
    assert by["eplb"]["saved_ms"] > 0 and by["eplb"]["dropped_share"] == 0.0
    assert by["capacity 1"]["dropped_share"] > by["capacity 1.5"]["dropped_share"] > 0
    for r in rows:
        assert r["layer_ms"] == pytest.approx(r["dispatch_ms"] + r["compute_ms"] + r["combine_ms"])
        assert r["saved_ms"] == pytest.approx(by["none"]["layer_ms"] - r["layer_ms"])
