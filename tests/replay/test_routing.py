"""Token-level routing of cases: physical ids, synthesised top-k, splits from top-k, expected rows."""

import numpy as np
import pytest

from dodoco.ep.layout import contiguous, eplb, round_robin
from dodoco.ep.traffic import copy_traffic_from_tokens, dedup_traffic, traffic_matrix
from dodoco.errors import DodocoError
from dodoco.replay.dispatchers.base import expected_rows
from dodoco.replay.routing import (
    block_counts,
    copy_splits,
    dedup_splits,
    physical_map,
    rank_topk_from_counts,
    to_physical,
)


def _random_topk(rng, T, E, K):
    return np.stack([rng.choice(E, K, replace=False) for _ in range(T)])


def test_physical_map_hand_case():
    # round robin, E=5, N=2: rank 0 holds 0, 2, 4 (physical 0, 1, 2), rank 1 holds 1, 3 (physical 3, 4)
    phys, slots = physical_map(round_robin(5, 2))
    assert slots.tolist() == [3, 2]
    assert phys[:, 0].tolist() == [0, -1, 1, -1, 2] and phys[:, 1].tolist() == [-1, 3, -1, 4, -1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: contiguous(8, 2),
        lambda: round_robin(8, 4),
        lambda: eplb(np.array([40, 3, 2, 1, 9, 1, 1, 1]), 4, num_redundant=4),
    ],
)
def test_physical_topk_moves_the_same_rows_as_the_logical_placement(make):
    """Independent check: splits from physical ids == ep.traffic's per-expert copies of the logical
    top-k under the placement (replica choice included); dedup likewise."""
    p = make()
    rng = np.random.default_rng(0)
    logical = [_random_topk(rng, T, 8, 2) for T in (7, 11, 5, 9)[: p.num_ranks] + (6,) * (p.num_ranks - 4)]
    phys, slots = to_physical(logical, p)
    assert slots.sum() == p.copies.sum()
    np.testing.assert_array_equal(copy_splits(phys, slots), copy_traffic_from_tokens(logical, p))
    np.testing.assert_array_equal(dedup_splits(phys, slots), dedup_traffic(logical, p))
    for t in phys:  # K distinct physical experts per token
        assert all(len(set(row)) == 2 for row in t.tolist())


def test_block_counts_and_synthesised_topk_reproduce_splits():
    splits = np.array([[10, 6, 0], [3, 3, 12], [5, 0, 7]]) * 2  # K = 2, rows per rank even
    slots = np.array([2, 3, 2])
    c = block_counts(splits, slots)
    assert c.tolist()[0] == [10, 10, 4, 4, 4, 0, 0]  # 20 over 2 slots, 12 over 3, 0 over 2
    topk = rank_topk_from_counts(c, 2, "test")
    for i, t in enumerate(topk):
        np.testing.assert_array_equal(np.bincount(t.ravel(), minlength=7), c[i])
        assert all(len(set(r)) == 2 for r in t.tolist())
    np.testing.assert_array_equal(copy_splits(topk, slots), splits)


def test_counts_that_are_not_whole_tokens_are_refused():
    with pytest.raises(DodocoError, match="rank 1's counts sum to 5, not a multiple of K=2"):
        rank_topk_from_counts([[1, 1, 2], [2, 2, 1]], 2, "case x")
    with pytest.raises(DodocoError, match="rank 0 sends 3 rows to one expert but has only 2 tokens"):
        rank_topk_from_counts([[3, 1, 0]], 2, "case x")


def test_count_based_traffic_equals_topk_splits_for_one_copy_placements():
    rng = np.random.default_rng(1)
    src = np.stack([np.bincount(_random_topk(rng, 12, 8, 2).ravel(), minlength=8) for _ in range(2)])
    p = contiguous(8, 2)
    phys, slots = to_physical(rank_topk_from_counts(src, 2, "t"), p)
    np.testing.assert_array_equal(copy_splits(phys, slots), traffic_matrix(src, p))


def _expected_brute(topk, slots, rank, order):
    base = np.concatenate([[0], np.cumsum(slots)])
    items = [
        (i, int(e), t)
        for i, tk in enumerate(topk)
        for t in range(len(tk))
        for e in tk[t]
        if base[rank] <= e < base[rank + 1]
    ]
    if order == "rank-major":
        items.sort(key=lambda x: (x[0], x[1], x[2]))
    else:
        items.sort(key=lambda x: (x[1], x[0], x[2]))
    return [i * (1 << 20) + t for i, _, t in items]


@pytest.mark.parametrize("order", ["rank-major", "expert-major"])
def test_expected_rows_match_brute_force(order):
    rng = np.random.default_rng(2)
    topk = [_random_topk(rng, T, 6, 3) for T in (5, 8, 4)]
    slots = np.array([2, 2, 2])
    for rank in range(3):
        assert expected_rows(topk, slots, rank, order).tolist() == _expected_brute(topk, slots, rank, order)
    dedup = expected_rows(topk, slots, 1, "rank-token", dedup=True).tolist()
    assert dedup == sorted(
        {i * (1 << 20) + t for i, tk in enumerate(topk) for t in range(len(tk)) if any(2 <= e < 4 for e in tk[t])}
    )
