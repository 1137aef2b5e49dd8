"""The one step former: seeded order, remainder dropped, source-rank split, window aggregates,
the N*B check, the model level, and 64-bit sums (each checked against a hand or brute-force
computation, and on counts whose sums overflow uint32)."""

import numpy as np
import pytest

from dodoco.ep.steps import (
    feasible_pairs,
    require_steps,
    run_source,
    source_of,
    step_order,
    sum_units,
    uniform_split,
    window_source,
)
from dodoco.errors import DodocoError
from dodoco.metrics.stats import layer_mean

BIG = 3_000_000_000  # two of these overflow uint32 (max 4_294_967_295)


def _brute_steps(counts, P, seed):
    """Steps by loops over the seeded order: step t = units order[t*P:(t+1)*P], Python ints."""
    order = step_order(counts.shape[0], seed)
    return np.array(
        [
            [
                [sum(int(counts[s, l, e]) for s in order[t * P : (t + 1) * P]) for e in range(counts.shape[2])]
                for l in range(counts.shape[1])
            ]
            for t in range(counts.shape[0] // P)
        ],
        dtype=object,
    )


def test_step_order_is_the_seeded_permutation():
    np.testing.assert_array_equal(step_order(10, 3), np.random.default_rng(3).permutation(10))
    np.testing.assert_array_equal(step_order(5, 0), [2, 4, 3, 0, 1])  # docs/metrics.md example
    assert not np.array_equal(step_order(50, 0), step_order(50, 1))


def test_docs_worked_example_steps_and_remainder_dropped():
    counts = np.array([[3, 1], [0, 4], [2, 2], [4, 0], [1, 3]], np.uint32)[:, None, :]  # S=5, L=1, E=2
    src = source_of(counts, seed=0)
    assert src.steps(2)[:, 0].tolist() == [[3, 5], [7, 1]]  # s2+s4, s3+s0; s1 dropped
    assert src.n_steps(2) == 2 and src.n_steps(5) == 1 and src.n_steps(6) == 0
    assert src.aggregate()[0].tolist() == [10, 10]  # the aggregate keeps every unit
    # N=2, B=1: rank 0 holds the first unit of each step, rank 1 the second
    assert src.ranks(2, 1)[:, :, 0].tolist() == [[[2, 2], [1, 3]], [[4, 0], [3, 1]]]
    assert src.totals(2, 1)[:, :, 0].tolist() == [[4, 4], [4, 4]]


@pytest.mark.parametrize("seed", [0, 7])
def test_steps_ranks_totals_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 50, (23, 2, 5)).astype(np.uint16)
    src = source_of(counts, seed)
    for N, B in [(1, 1), (2, 3), (4, 2), (3, 7), (1, 23)]:
        want = _brute_steps(counts, N * B, seed)
        assert src.steps(N * B).tolist() == want.tolist()
        ranks = src.ranks(N, B)
        order = step_order(23, seed)
        for t in range(ranks.shape[0]):
            for i in range(N):
                units = order[t * N * B + i * B : t * N * B + (i + 1) * B]
                assert ranks[t, i].tolist() == counts[units].astype(int).sum(0).tolist()
        assert src.totals(N, B).tolist() == ranks.astype(np.int64).sum(-1).tolist()


def test_source_of_subset_and_explicit_order():
    counts = np.arange(6 * 1 * 2, dtype=np.uint32).reshape(6, 1, 2)
    idx = np.array([5, 1, 3])
    sub = source_of(counts, seed=2, idx=idx)
    assert sub.steps(1)[:, 0].tolist() == counts[idx[step_order(3, 2)], 0].tolist()
    order = np.array([4, 0, 2, 1])
    assert source_of(counts, order=order).steps(2)[:, 0].tolist() == [
        (counts[4, 0] + counts[0, 0]).tolist(),
        (counts[2, 0] + counts[1, 0]).tolist(),
    ]


def test_unit_steps_and_holders_agree_with_the_source():
    counts = np.random.default_rng(1).integers(0, 9, (11, 1, 3)).astype(np.uint32)
    src = source_of(counts, 4)
    step, rank = src.unit_steps(2, 2)
    assert (step == -1).sum() == 11 % 4
    ranks = src.ranks(2, 2)
    held = src.holders(2, 2)  # [n, N, B] unit ids
    order = step_order(11, 4)
    for t in range(ranks.shape[0]):
        for i in range(2):
            assert ranks[t, i].tolist() == counts[(step == t) & (rank == i)].sum(0).tolist()
            assert held[t, i].tolist() == order[t * 4 + i * 2 : t * 4 + i * 2 + 2].tolist()
            assert ranks[t, i].tolist() == counts[held[t, i]].sum(0).tolist()


def test_a_subset_source_places_only_its_units():
    counts = np.random.default_rng(2).integers(0, 9, (10, 1, 2)).astype(np.uint32)
    idx = np.array([1, 4, 6, 9])
    step, rank = source_of(counts, 3, idx=idx).unit_steps(2, 1)
    assert sorted(np.flatnonzero(step >= 0).tolist()) == idx.tolist()
    assert step[[0, 2, 3, 5, 7, 8]].tolist() == [-1] * 6


def test_run_source_is_built_once_and_is_a_window_for_a_window_run(tmp_path):
    from dodoco.findings.synthetic import write_counts_run
    from dodoco.store import open_run

    counts = np.arange(24, dtype=np.uint32).reshape(4, 2, 3)
    run = open_run(write_counts_run(tmp_path / "r", counts, model="m", condition="prose"))
    assert run_source(run, 1) is run_source(run, 1)
    assert run_source(run, 1).steps(2).tolist() == source_of(counts, 1).steps(2).tolist()
    w = open_run(write_counts_run(tmp_path / "w", counts, model="m", condition="prose", K=3, granularity="window"))
    window = run_source(w, 0)
    assert window.source_split == "uniform" and window.n_steps(64) == 1
    assert (window.totals(4, 1) % 3 == 0).all()  # whole tokens of the run's K per rank
    with pytest.raises(DodocoError, match="window aggregate has no per-unit data"):
        window.holders(2, 1)


def test_window_is_one_step_for_every_n_and_b_split_exactly():
    window = np.array([[[7, 0, 5, 1]], [[2, 3, 0, 4]]], np.uint32)  # two rows summed: [9, 3, 5, 5]
    src = window_source(window)
    assert src.source_split == "uniform"
    for P in (1, 3, 64):
        assert src.n_steps(P) == 1 and src.steps(P)[0, 0].tolist() == [9, 3, 5, 5]
    r = src.ranks(4, 8)[0, :, 0]  # [N=4, E]
    # floor(c/4) = [2, 0, 1, 1]; leftovers 1, 3, 1, 1 dealt in turn: e0 -> r0, e1 -> r1..r3,
    # e2 -> r0, e3 -> r1
    assert r.tolist() == [[3, 0, 2, 1], [2, 1, 1, 2], [2, 1, 1, 1], [2, 1, 1, 1]]
    assert src.totals(4, 8)[0, :, 0].tolist() == [6, 6, 5, 5]
    assert src.aggregate()[0].tolist() == [9, 3, 5, 5]


@pytest.mark.parametrize("N", [1, 2, 3, 7, 16])
def test_uniform_split_is_exact_and_even(N):
    c = np.random.default_rng(N).integers(0, 1000, (3, 10))  # [L, E]
    r = uniform_split(c, N)  # [N, L, E]
    assert r.shape == (N, 3, 10) and r.dtype == np.int64
    np.testing.assert_array_equal(r.sum(0), c)  # exact
    assert (r.max(0) - r.min(0)).max() <= 1  # each expert: shares differ by at most 1
    tot = r.sum(-1)  # [N, L]
    assert (tot.max(0) - tot.min(0)).max() <= 1  # rank totals differ by at most 1


def test_require_steps_is_one_line_naming_the_numbers():
    require_steps(32, 16, 2)
    with pytest.raises(DodocoError, match=r"EP=16 x batch=2 needs 32 sequences per step but the run has 20") as e:
        require_steps(20, 16, 2)
    assert "\n" not in str(e.value)
    with pytest.raises(DodocoError, match=r"must be >= 1, got EP=0, batch=1"):
        require_steps(20, 0, 1)


def test_feasible_pairs_sorted_by_n_within_b_with_reasons():
    src = source_of(np.ones((10, 1, 2), np.uint32))
    pairs, skipped = feasible_pairs(src, [4, 1, 2], [3, 2])
    assert pairs == [(1, 2), (2, 2), (4, 2), (1, 3), (2, 3)]
    assert skipped == [
        (
            4,
            3,
            "EP=4 x batch=3 needs 12 sequences per step but the run has 10: "
            "observe more sequences or lower the EP degree / --batch",
        )
    ]
    pairs, skipped = feasible_pairs(window_source(np.ones((1, 1, 2), np.uint32)), [64], [32])
    assert pairs == [(64, 32)] and not skipped  # a window is one step whatever N*B
    with pytest.raises(DodocoError, match="EP=0"):
        feasible_pairs(src, [0], [1])


def test_layer_mean_ignores_nan_quietly():
    v = np.array([[1.0, 3.0, np.nan], [np.nan, np.nan, np.nan], [2.0, 2.0, 2.0]])
    with np.errstate(all="raise"):
        out = layer_mean(v)
    np.testing.assert_array_equal(out[[0, 2]], [2.0, 2.0])
    assert np.isnan(out[1])


def test_every_sum_is_64_bit_on_uint32_counts():
    counts = np.full((4, 2, 3), BIG, np.uint32)
    counts[:, 1] = 1
    src = source_of(counts, seed=0)
    assert src.steps(2)[0, 0].tolist() == [2 * BIG] * 3  # uint32 would wrap to 1_705_032_704
    assert src.steps(4)[0, 0].tolist() == [4 * BIG] * 3
    assert src.ranks(2, 2)[0, 0, 0].tolist() == [2 * BIG] * 3
    assert src.totals(2, 1)[0, 0].tolist() == [3 * BIG, 3]
    assert src.aggregate()[0].tolist() == [4 * BIG] * 3
    assert sum_units(counts)[0].tolist() == [4 * BIG] * 3
    w = window_source(counts)
    assert w.steps(8)[0, 0].tolist() == [4 * BIG] * 3
    assert w.ranks(3, 1)[0, :, 0].sum(0).tolist() == [4 * BIG] * 3
    assert w.totals(3, 1)[0, :, 0].sum() == 12 * BIG


def test_no_steps_of_zero_units():
    assert source_of(np.ones((4, 1, 2), np.uint32)).n_steps(0) == 0
    assert window_source(np.ones((1, 1, 2), np.uint32)).n_steps(0) == 0
