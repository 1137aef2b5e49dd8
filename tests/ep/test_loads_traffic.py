"""Rank loads, receiver skew and traffic matrices on hand examples and against c @ share."""

import numpy as np
import pytest

from dodoco.ep.loads import RankMap, rank_loads, receiver_skew, replica_max_mean
from dodoco.ep.layout import contiguous, eplb, eplb_layers, round_robin
from dodoco.ep.traffic import (
    copy_traffic_from_tokens,
    dedup_traffic,
    send_recv,
    send_recv_bytes,
    send_recv_local,
    split_sizes,
    token_destinations,
    traffic_bytes,
    traffic_matrix,
)


def _placements(c):
    E = c.shape[-1]
    fit = c.reshape(-1, c.shape[-2], E).sum(0)
    yield contiguous(E, 4)
    yield round_robin(E, 4)
    yield contiguous(E - 3, 5) if E > 8 else contiguous(E, 3)
    yield eplb(fit.sum(0), 4)
    yield eplb(fit.sum(0), 4, num_redundant=4)
    yield eplb_layers(fit, 4)
    yield eplb_layers(fit, 4, num_redundant=4)
    yield eplb_layers(fit, 32 if E >= 32 else 2)


@pytest.mark.parametrize("E", [16, 64])
def test_rankmap_equals_matrix_product(E):
    rng = np.random.default_rng(E)
    c = rng.integers(0, 50, (5, 3, E)).astype(np.uint32)
    for p in _placements(c):
        cc = c[..., : p.num_experts]
        share = p.share if p.layered else np.broadcast_to(p.share, (3,) + p.share.shape)
        rm = RankMap(p)
        assert np.allclose(rm.loads(cc), np.einsum("nle,ler->nlr", cc.astype(float), share))
        assert np.allclose(rm.loads(cc, dtype=np.uint32), np.einsum("nle,ler->nlr", cc.astype(float), share))
        src = rng.integers(0, 50, (2, p.num_ranks, 3, p.num_experts)).astype(np.uint16)
        want = np.einsum("nile,lei->nil", src.astype(float), share)
        assert np.allclose(rm.local(src, layers=True), want), (p.name, rm.kind)


def test_rank_loads_and_receiver_skew_by_hand():
    c = np.array([4, 0, 2, 2, 1, 1, 0, 6])  # E=8
    R = rank_loads(c, contiguous(8, 4))
    assert R.tolist() == [4, 4, 2, 6]
    assert receiver_skew(R) == pytest.approx(6 / 4)
    assert rank_loads(c, round_robin(8, 4)).tolist() == [5, 1, 2, 8]
    assert receiver_skew(np.array([3, 3, 3])) == 1.0


def test_replication_splits_load_evenly():
    c = np.array([12.0, 1, 1, 1, 1, 1, 1, 1])
    p = eplb(c, 2, num_redundant=2)
    R = rank_loads(c, p)
    assert R.sum() == pytest.approx(c.sum())
    # expert 0 has three replicas, each serving 4
    assert replica_max_mean(c, p) == pytest.approx(4 / (19 / 10))
    assert replica_max_mean(c, contiguous(8, 2)) == pytest.approx(12 / (19 / 8))


def test_traffic_matrix_rows_are_sources_columns_are_loads():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 30, (4, 8))
    for p in (contiguous(8, 4), round_robin(8, 4), eplb(src.sum(0), 4, num_redundant=4)):
        s = traffic_matrix(src, p)
        assert np.allclose(s.sum(axis=1), src.sum(axis=1))  # row sums: source assignments
        assert np.allclose(s.sum(axis=0), rank_loads(src.sum(0), p))  # column sums: rank loads


def _send_recv_by_hand_ok(fn) -> bool:
    """fn gives the hand-computed off-diagonal totals of s: S = [1+2, 0+3, 4+0], R = [0+4, 1+0, 2+3]."""
    S, R = fn(np.array([[5.0, 1, 2], [0, 7, 3], [4, 0, 9]]))
    return S.tolist() == [3, 3, 4] and R.tolist() == [4, 1, 5]


def test_diagonal_excluded_from_send_recv():
    s = np.array([[5.0, 1, 2], [0, 7, 3], [4, 0, 9]])
    assert _send_recv_by_hand_ok(send_recv)
    assert not _send_recv_by_hand_ok(lambda s: (s.sum(-1), s.sum(-2)))  # diagonal included: caught
    # the fast path from totals and the diagonal is the same formula
    S, R = send_recv_local(s.sum(-1), s.sum(-2), np.diag(s))
    assert S.tolist() == [3, 3, 4] and R.tolist() == [4, 1, 5]
    batch = np.random.default_rng(0).integers(0, 50, (5, 2, 4, 4))  # [..., N, N]
    a, b = send_recv(batch)
    c, d = send_recv_local(batch.sum(-1), batch.sum(-2), np.diagonal(batch, axis1=-2, axis2=-1))
    assert np.array_equal(a, c) and np.array_equal(b, d) and a.dtype == np.int64
    Sb, Rb = send_recv_bytes(s, hidden=4, dtype_bytes=2)
    assert Sb.tolist() == [24, 24, 32] and Rb.tolist() == [32, 8, 40]
    assert traffic_bytes(s, 4, 2)[0, 0] == 40


def test_send_recv_sums_in_64_bits():
    big = 3_000_000_000
    s = np.array([[1, big, big], [big, 1, 0], [big, big, 1]], np.uint32)  # rows overflow uint32
    S, R = send_recv(s)
    assert S.tolist() == [2 * big, big, 2 * big] and R.tolist() == [2 * big, 2 * big, big]
    S2, R2 = send_recv_local(
        np.array([2 * big + 1], np.int64), np.array([3 * big], np.int64), np.array([big], np.uint32)
    )
    assert S2.tolist() == [big + 1] and R2.tolist() == [2 * big]


def test_split_sizes_integer_and_largest_remainder():
    s = np.array([[1.0, 2, 3], [0, 0, 4], [2, 2, 2]])
    assert split_sizes(s).tolist() == s.astype(int).tolist()
    f = np.array([[1.5, 1.5, 1.0], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 4 / 3]])
    out = split_sizes(f)
    assert out.sum(axis=1).tolist() == [4, 1, 2]  # row totals preserved
    assert out.tolist() == [[2, 1, 1], [0, 0, 1], [1, 0, 1]]  # ties: lower column first
    rng = np.random.default_rng(3)
    src = rng.integers(0, 40, (4, 8))
    s = traffic_matrix(src, eplb(src.sum(0), 4, num_redundant=4))
    assert np.array_equal(split_sizes(s).sum(axis=1), src.sum(axis=1))
    assert np.all(np.abs(split_sizes(s) - s) < 1)


def test_token_destinations_round_robin_over_replicas():
    p = eplb(np.array([12.0, 1, 1, 1, 1, 1, 1, 1]), 2, num_redundant=2)
    ranks_of_0 = np.repeat(np.arange(2), p.copies[0])  # replica number -> rank
    dst = token_destinations(np.zeros((6, 1), dtype=np.int64), p)
    assert dst[:, 0].tolist() == [ranks_of_0[t % 3] for t in range(6)]


def test_dedup_is_at_most_per_copy_and_equal_when_ranks_differ():
    p = contiguous(8, 4)  # experts {0,1} {2,3} {4,5} {6,7}
    rank0 = np.array([[0, 1], [0, 2]])  # token 0: both on rank 0; token 1: ranks 0 and 1
    rank1 = np.array([[4, 6]])
    copies = copy_traffic_from_tokens([rank0, rank1], p)
    dedup = dedup_traffic([rank0, rank1], p)
    assert copies[0].tolist() == [3, 1, 0, 0] and dedup[0].tolist() == [2, 1, 0, 0]
    assert np.all(dedup <= copies)
    distinct = [np.array([[0, 2, 4]]), np.array([[1, 3, 7]])]  # K experts on K ranks
    assert np.array_equal(dedup_traffic(distinct, p), copy_traffic_from_tokens(distinct, p))
    rng = np.random.default_rng(0)
    q = eplb(rng.random(8), 4, num_redundant=4)
    toks = [np.stack([rng.choice(8, 3, replace=False) for _ in range(20)]) for _ in range(4)]
    assert np.all(dedup_traffic(toks, q) <= copy_traffic_from_tokens(toks, q))
    assert copy_traffic_from_tokens(toks, q).sum() == 4 * 20 * 3
