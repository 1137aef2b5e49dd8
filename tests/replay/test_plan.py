"""Replay plan: split sizes from counts, controls, byte accounting (hand-computed cases)."""

import numpy as np
import pytest

from dodoco.ep.steps import require_steps, source_of, step_order, window_source
from dodoco.errors import DodocoError
from dodoco.replay.plan import (
    balanced_splits,
    case_bytes,
    floor_ms,
    hot_pair_splits,
    run_cases,
    spread,
    skewed_splits,
    sweep_sizes,
    synth_topk,
)


def test_run_cases_match_hand_sums():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 9, size=(6, 2, 4)).astype(np.uint32)  # S=6, L=2, E=4
    cases = run_cases(source_of(counts, 5), 2, 1, condition="prose", kind="real")
    order = step_order(6, 5)
    assert [(c.step, c.layer) for c in cases] == [(k, l) for k in range(3) for l in range(2)]
    for c in cases:
        seqs = order[2 * c.step : 2 * c.step + 2]  # rank 0 holds seqs[0], rank 1 seqs[1]
        want = np.zeros((2, 2), dtype=np.int64)
        for i in range(2):
            for e in range(4):  # contiguous: experts 0,1 on rank 0; 2,3 on rank 1
                want[i, e // 2] += int(counts[seqs[i], c.layer, e])
        np.testing.assert_array_equal(c.splits, want)
        np.testing.assert_array_equal(c.src.sum(1), want.sum(1))


def test_run_cases_layers_and_steps_selection():
    counts = np.ones((8, 3, 4), dtype=np.uint32)
    cases = run_cases(source_of(counts), 2, 2, condition="x", kind="real", layers=[2], max_steps=1)
    assert [(c.step, c.layer) for c in cases] == [(0, 2)]
    np.testing.assert_array_equal(cases[0].splits, [[4, 4], [4, 4]])  # 2 seqs x 2 experts per rank
    with pytest.raises(DodocoError, match=r"--layers \[3\] out of range"):
        run_cases(source_of(counts), 2, 1, condition="x", kind="real", layers=[3])


def test_run_cases_keep_exactly_max_steps_in_order():
    counts = np.random.default_rng(4).integers(0, 9, size=(12, 1, 4)).astype(np.uint32)  # 3 steps of 4
    src = source_of(counts, 1)
    every = run_cases(src, 2, 2, condition="x", kind="real")
    assert [c.step for c in every] == [0, 1, 2]
    for k in (1, 2, 3, 9):
        got = run_cases(src, 2, 2, condition="x", kind="real", max_steps=k)
        assert [c.step for c in got] == list(range(min(k, 3)))
        for a, b in zip(got, every):
            np.testing.assert_array_equal(a.splits, b.splits)


def test_run_cases_of_a_window_split_it_evenly_in_whole_tokens():
    window = np.array([[[6, 3, 2, 1]]], np.uint32)  # 6 tokens of K=2 summed
    (case,) = run_cases(window_source(window, K=2), 2, 4, condition="w", kind="real")
    # tokens dealt as synth_topk deals them, token t on rank t mod 2: each rank 3 tokens (6 rows)
    np.testing.assert_array_equal(case.src, [[3, 2, 1, 0], [3, 1, 1, 1]])
    np.testing.assert_array_equal(case.splits, [[5, 1], [4, 2]])  # contiguous: experts 0,1 on rank 0


def test_too_many_ranks_names_the_count():
    with pytest.raises(DodocoError, match="EP=8 x batch=2 needs 16 sequences per step but the run has 8"):
        require_steps(8, 8, 2)
    with pytest.raises(DodocoError, match="observe more sequences"):
        run_cases(source_of(np.ones((8, 1, 16), dtype=np.uint32)), 8, 2, condition="x", kind="real")


def test_balanced_splits_hand_case():
    np.testing.assert_array_equal(balanced_splits([10, 10, 10]), [[3, 4, 3], [3, 3, 4], [4, 3, 3]])
    b = balanced_splits([7, 100, 3, 50])
    np.testing.assert_array_equal(b.sum(1), [7, 100, 3, 50])
    assert b.max(1).tolist() == [2, 25, 1, 13] and b.min(1).tolist() == [1, 25, 0, 12]


def test_skewed_splits_receiver_skew():
    s = skewed_splits([100, 100, 100, 100], 2.0, hot=0)
    np.testing.assert_array_equal(s[:, 0], [50, 50, 50, 50])
    np.testing.assert_array_equal(s.sum(1), [100] * 4)
    assert case_bytes(s, 1)["receiver_skew"] == pytest.approx(2.0)
    with pytest.raises(DodocoError, match=r"receiver skew 5.0 is outside \[1, N=4\]"):
        skewed_splits([1, 1, 1, 1], 5.0)


def test_case_bytes_hand_numbers():
    b = case_bytes([[1, 2], [3, 4]], 10)
    assert b == {
        "bytes_total": 100.0,
        "per_rank_bytes": 50.0,
        "send_off_max": 30.0,
        "recv_off_max": 30.0,
        "off_mean": 25.0,
        "pair_max": 30.0,
        "receiver_skew": pytest.approx(1.2),
    }


def test_sweep_sizes_powers_of_two():
    assert sweep_sizes(1000, 8192) == [1024, 2048, 4096, 8192]
    assert len(sweep_sizes()) == 20 and sweep_sizes()[-1] == 512 << 20


def test_synth_topk_reproduces_counts():
    rng = np.random.default_rng(0)
    T, K, E = 50, 4, 12
    c = np.zeros(E, dtype=np.int64)
    for _ in range(T):
        c[rng.choice(E, K, replace=False)] += 1
    topk = synth_topk(c, T, K)
    assert topk.shape == (T, K)
    assert all(len(set(row)) == K for row in topk.tolist())
    np.testing.assert_array_equal(np.bincount(topk.ravel(), minlength=E), c)
    with pytest.raises(DodocoError, match="only T=2 tokens"):
        synth_topk([3, 1], 2, 2)


def test_hot_pair_hand_case_and_skew():
    # N=4, P=100 rows per rank, rho=2 (K=1): x = round(1 * 100 * 4/3) = 133; the other 267 rows go
    # 67, 67, 67, 66 to the sources, each spread evenly (remainders rotated); the pair 1->0 adds x
    s = hot_pair_splits(100, 4, 2.0)
    off = s.copy()
    off[1, 0] -= 133
    np.testing.assert_array_equal(off.sum(1), [67, 67, 67, 66])
    np.testing.assert_array_equal(off, balanced_splits([67, 67, 67, 66]))
    assert s.sum() == 400 and case_bytes(s, 1)["receiver_skew"] == s[:, 0].sum() / 100 == 2.0
    # whole tokens of K rows: every row total a multiple of K, skew still close to rho
    for N, rho in [(2, 1.0), (2, 1.5), (2, 2.0), (4, 1.05), (4, 3.0), (8, 1.3)]:
        s = hot_pair_splits(8 * 512, N, rho, K=8)
        assert (s.sum(1) % 8 == 0).all() and abs(s.sum() / N - 8 * 512) <= 8
        assert case_bytes(s, 1)["receiver_skew"] == pytest.approx(rho, abs=2e-3)
        big = s - np.diag(np.diag(s))
        if rho > 1:
            assert big.max() == s[1, 0]  # the hot pair is the largest off-diagonal entry
    with pytest.raises(DodocoError, match=r"receiver skew 2.5 is outside \[1, N=2\]"):
        hot_pair_splits(100, 2, 2.5)


def test_floor_is_busiest_offdiagonal_over_link():
    b = case_bytes([[5, 1], [3, 0]], 1e9)  # rank 0 receives 3 GB from rank 1, sends 1 GB
    assert floor_ms(b, 450.0) == pytest.approx(3e9 / 450e9 * 1e3)


# ---- edges the module tests above leave open (bench/bench_mutation.py) ----------------------------------------


def test_run_cases_label_their_cases_and_check_the_placement_and_the_units():
    from dodoco.ep.layout import contiguous

    src = source_of(np.ones((4, 2, 8), dtype=np.uint32))
    (c, *_) = run_cases(src, 2, 1, condition="prose", kind="mock", layers=[1], placement=contiguous(8, 2))
    assert (c.condition, c.kind, c.step, c.layer) == ("prose", "mock", 0, 1) and c.src.dtype == np.int64
    for bad in (contiguous(8, 4), contiguous(4, 2)):  # wrong N, wrong E
        with pytest.raises(DodocoError, match="placement is for"):
            run_cases(src, 2, 1, condition="x", kind="real", placement=bad)
    with pytest.raises(DodocoError, match="but the run has 4"):
        run_cases(src, 4, 2, condition="x", kind="real")


def test_controls_of_lists_and_edges():
    assert spread(7, 3, 2).tolist() == [2, 2, 3] and spread(7, 3, 2).dtype == np.int64
    np.testing.assert_array_equal(balanced_splits([5, 5]), [[2, 3], [3, 2]])
    s = skewed_splits([10, 10, 10, 10], 4.0)  # everything to the hot rank
    assert s.dtype == np.int64 and s[:, 0].tolist() == [10, 10, 10, 10] and s.sum() == 40
    one = skewed_splits([9], 1.0)
    assert one.tolist() == [[9]]
    with pytest.raises(DodocoError):
        skewed_splits([1, 1], 2.5)
    h = hot_pair_splits(8, 1, 1.0)
    assert h.tolist() == [[8]] and h.dtype == np.int64
    assert hot_pair_splits(8, 2, 2.0).sum(0)[0] == 2 * hot_pair_splits(8, 2, 2.0).sum() // 2
    with pytest.raises(DodocoError):
        hot_pair_splits(8, 1, 1.5)
    assert sweep_sizes(1, 1) == [1] and sweep_sizes(3, 4) == [4]
    for bad in ((0, 4), (8, 4)):
        with pytest.raises(DodocoError):
            sweep_sizes(*bad)


def test_case_bytes_of_one_rank_and_floor_in_ms():
    b = case_bytes([[5]], 4)
    assert b["pair_max"] == 0.0 and b["per_rank_bytes"] == 20.0 and b["send_off_max"] == 0.0
    b = case_bytes([[1, 3, 0], [2, 0, 4], [0, 0, 7]], 10)
    assert b["pair_max"] == 40.0 and b["bytes_total"] == 170.0 and b["receiver_skew"] == pytest.approx(110 / (170 / 3))
    assert floor_ms({"send_off_max": 2e9, "recv_off_max": 1e9}, 4.0) == pytest.approx(500.0)


def test_exact_floor_the_units_named_and_an_expert_every_token_chose():
    assert floor_ms({"send_off_max": 2e9, "recv_off_max": 1e9}, 4.0) == 500.0
    src = source_of(np.ones((3, 1, 4), dtype=np.uint32))
    with pytest.raises(DodocoError, match="but the held-out part has 3"):
        run_cases(src, 2, 2, condition="x", kind="real", what="the held-out part")
    topk = synth_topk(np.array([3, 1, 1, 1]), 3, 2)  # expert 0 on every one of the 3 tokens
    assert sorted(topk[:, 0].tolist() + topk[:, 1].tolist()).count(0) == 3
