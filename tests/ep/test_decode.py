"""Decode steps from token traces: hand example, positions, and the decode EP scan."""

import numpy as np
import pytest

from dodoco.ep.decode import decode_positions, decode_scan, decode_source, decode_step_counts, trace_counts
from dodoco.errors import DodocoError
from dodoco.ep.steps import step_order


def _trace():
    # 2 sequences of 3 tokens, L = 1, K = 2, E = 4
    topk = np.array(
        [
            [[0, 1]],
            [[1, 2]],
            [[2, 3]],  # sequence 0
            [[0, 3]],
            [[1, 3]],
            [[0, 2]],
        ],
        dtype=np.uint8,
    )  # sequence 1
    return topk, np.array([0, 3, 6])


def test_decode_steps_by_hand():
    topk, offsets = _trace()
    steps = decode_step_counts(topk, offsets, 4, seqs_per_step=2, positions=[0, 2])
    # position 0: tokens 0 and 3 -> experts {0,1} + {0,3}; position 2: {2,3} + {0,2}
    assert steps.shape == (2, 1, 4)
    assert steps[0, 0].tolist() == [2, 1, 0, 1]
    assert steps[1, 0].tolist() == [1, 0, 2, 1]
    one = decode_step_counts(topk, offsets, 4, seqs_per_step=1, positions=[1])
    first = step_order(2, 0)[0]  # steps follow the seeded sequence order
    assert one[0, 0].tolist() == ([0, 1, 1, 0] if first == 0 else [0, 1, 0, 1])


def test_decode_ranks_hold_their_sequences():
    topk, offsets = _trace()
    src = decode_source(topk, offsets, 4, positions=np.array([0]), seed=0)
    ranks = src.ranks(2, 1)  # one step, rank i holds sequence order[i]
    order = step_order(2, 0)
    for i in range(2):
        tok = offsets[order[i]]
        want = np.bincount(topk[tok, 0], minlength=4)
        assert ranks[0, i, 0].tolist() == want.tolist()


def test_positions_and_errors():
    assert decode_positions([5, 9], n_positions=3).tolist() == [0, 2, 4]
    assert decode_positions([5, 9], positions=[4, 1, 1]).tolist() == [1, 4]
    with pytest.raises(DodocoError, match=r"\[0, 4\].*shortest sequence has 5 tokens"):
        decode_positions([5, 9], positions=[5])
    topk, offsets = _trace()
    with pytest.raises(DodocoError, match="needs 3 sequences per step but the trace has 2"):
        decode_step_counts(topk, offsets, 4, seqs_per_step=3)
    with pytest.raises(DodocoError, match="offsets"):
        decode_step_counts(topk, np.array([0, 2, 5]), 4, 1)


def test_trace_counts_equals_bincount():
    topk, offsets = _trace()
    c = trace_counts(topk, offsets, 4)
    assert c[:, 0].tolist() == [[1, 2, 2, 1], [2, 1, 1, 2]]
    assert trace_counts(topk, offsets, 4, idx=[1])[0, 0].tolist() == [2, 1, 1, 2]


def test_decode_scan_table():
    rng = np.random.default_rng(0)
    S, T_seq, L, E, K = 32, 6, 2, 8, 2
    topk = np.stack([np.stack([rng.choice(E, K, replace=False) for _ in range(L)]) for _ in range(S * T_seq)]).astype(
        np.uint8
    )
    offsets = np.arange(S + 1) * T_seq
    table = decode_scan(
        topk, offsets, E, ep=(2, 4), batch=(1, 2), n_boot=20, placement=("contiguous", "eplb"), n_positions=3
    )
    assert table.meta["decode_positions"] == [0, 2, 5] and table.meta["part"] == "held-out"
    table = table.to_table()
    assert set(table.column("regime").to_pylist()) == {"decode"}
    metrics = set(table.column("metric").to_pylist())
    assert {"gini", "max_mean", "receiver_skew", "send_max_mean"} <= metrics
    # every decode step has N*B tokens x K assignments: max/mean >= 1
    vals = np.array(table.column("value").to_pylist())
    assert np.all(vals[np.array(table.column("metric").to_pylist()) == "max_mean"] >= 1.0)
