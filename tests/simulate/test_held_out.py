"""``simulate_ep`` with a fitted placement predicts on the held-out half of the sequences, never on the
half the placement was fitted on (``ep.placements.evaluation_plan``, the one policy): checked against
the receiver skew computed by hand on each half."""

import numpy as np
import pytest

from dodoco.ep.layout import eplb_layers
from dodoco.ep.placements import fit_eval_split
from dodoco.ep.steps import step_order
from dodoco.simulate.cluster import AlltoallTimer, Cluster
from dodoco.simulate.layer import simulate_ep


def _recv_skew(counts, units, N, B, seed, share):
    """Mean over steps and layers of max/mean rank load: the held-out units in their seeded order, steps
    of N*B, loads = counts @ share (brute force over steps)."""
    order = units[step_order(len(units), seed)]
    out = []
    for t in range(len(order) // (N * B)):
        step = counts[order[t * N * B : (t + 1) * N * B]].sum(axis=0).astype(float)  # [L, E]
        for layer in range(step.shape[0]):
            R = step[layer] @ share[layer]
            out.append(R.max() / R.mean())
    return float(np.mean(out))


def test_a_fitted_placement_is_evaluated_on_the_held_out_half():
    S, L, E, N, seed = 32, 2, 8, 4, 0
    fit_idx, eval_idx = fit_eval_split(S, 0.5, seed)
    rng = np.random.default_rng(1)
    counts = rng.poisson(8.0, (S, L, E)).astype(np.uint32)
    counts[fit_idx, :, :4] += 60  # the fit half is hot on experts 0..3 (EPLB spreads them) ...
    counts[eval_idx, :, 0] += 60  # ... the held-out half on expert 0 alone
    share = eplb_layers(counts[fit_idx].sum(axis=0), N, 0).share  # EPLB fitted on the fit half
    held_out = _recv_skew(counts, eval_idx, N, 1, seed, share)
    fitted_on = _recv_skew(counts, fit_idx, N, 1, seed, share)
    assert held_out > fitted_on + 1.0  # the halves tell apart
    timer = AlltoallTimer(Cluster(name="t", gpus_per_node=8, nvlink_bw=100.0, nic_bw=10.0))
    (row,), skipped = simulate_ep(counts, [N], 1, timer, row_bytes=1 << 20, placement="eplb", seed=seed, max_steps=None)
    assert not skipped and row["part"] == "held-out" and row["cases"] == (len(eval_idx) // N) * L
    assert row["recv_skew"] == pytest.approx(held_out, rel=0.02)
