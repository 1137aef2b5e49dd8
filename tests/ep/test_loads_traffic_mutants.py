"""ep.traffic and ep.loads against independent computations, where the module tests leave room for wrong
code (found by bench/bench_mutation.py): batches of matrices, narrow types, ties, replicas; each test names
what it pins."""

import numpy as np
import pytest

from dodoco.ep.layout import contiguous, eplb, round_robin, stack_layers
from dodoco.errors import DodocoError


# ---- ep.traffic and ep.loads: batches of matrices, narrow types, ties, replicas ------------------------------


def test_split_sizes_keep_row_totals_break_ties_by_column_and_refuse_bad_matrices():
    from dodoco.ep.traffic import split_sizes

    s = np.array([[1.5, 1.5, 0.0], [0.25, 0.25, 0.5], [2.0, 0.0, 1.0]])
    # row 0: 1 + 1, one unit left, equal fractions -> the lower column; row 1: 0, 0, 0 + one unit to
    # the largest fraction (0.5); row 2 integer: unchanged
    got = split_sizes(s)
    assert got.dtype == np.int64 and got.tolist() == [[2, 1, 0], [0, 0, 1], [2, 0, 1]]
    np.testing.assert_array_equal(split_sizes(np.array([[0.999999999999, 0.000000000001], [0, 1]])), [[1, 0], [0, 1]])
    np.testing.assert_array_equal(split_sizes([[1, 2], [3, 4]]), [[1, 2], [3, 4]])  # lists, integers
    for bad in (np.ones((2, 3)), np.ones((2, 2, 2)), -np.ones((2, 2))):
        with pytest.raises(DodocoError):
            split_sizes(bad)


def test_batched_off_diagonal_send_recv_and_node_totals():
    from dodoco.ep.traffic import off_diagonal, send_recv, send_recv_nodes

    rng = np.random.default_rng(2)
    s = rng.integers(0, 9, (2, 3, 4, 4)).astype(np.uint8)
    off = off_diagonal(s)
    assert off.dtype == np.uint8 and (np.diagonal(off, axis1=-2, axis2=-1) == 0).all()
    np.testing.assert_array_equal(off + np.eye(4, dtype=np.uint8) * s, s)
    S, R = send_recv(s)
    np.testing.assert_array_equal(S, off.astype(np.int64).sum(-1))
    np.testing.assert_array_equal(R, off.astype(np.int64).sum(-2))
    x = rng.integers(0, 200, (2, 5, 3)).astype(np.uint8)  # rank -> node, wide sums
    sent, recv = send_recv_nodes(x)
    assert sent.dtype == np.int64 and sent.shape == (2, 5) and recv.shape == (2, 3)
    np.testing.assert_array_equal(sent, x.astype(int).sum(-1))
    np.testing.assert_array_equal(recv, x.astype(int).sum(-2))
    fs, fr = send_recv(s.astype(float) / 2)
    assert fs.dtype == np.float64 and np.allclose(fs, S / 2) and np.allclose(fr, R / 2)


def test_pair_counts_and_distinct_destinations_by_hand():
    from dodoco.ep.traffic import distinct_destinations, pair_counts

    dst = np.array([[3, 1, 3, 0], [2, 2, 2, 2], [0, 1, 2, 3]], np.uint8)
    d, first = distinct_destinations(dst)
    assert d.tolist() == [[0, 1, 3, 3], [2, 2, 2, 2], [0, 1, 2, 3]] and first.dtype == bool
    assert first.tolist() == [[True, True, True, False], [True, False, False, False], [True] * 4]
    src = np.array([1, 0, 1], np.uint8)
    got = pair_counts(src, d, 2, 300, first)  # uint8 ids, keys beyond uint8
    assert got.shape == (2, 300) and got.dtype == np.int64
    assert got[1, :4].tolist() == [2, 2, 1, 2] and got[0, :4].tolist() == [0, 0, 1, 0] and got.sum() == 8
    np.testing.assert_array_equal(pair_counts(src, d, 2, 300).sum(), 12)
    d3, f3 = distinct_destinations(np.stack([dst, dst[::-1]]))  # leading axes
    assert f3.sum() == 2 * first.sum()


def test_traffic_matrix_per_layer_and_bytes():
    from dodoco.ep.layout import eplb_layers
    from dodoco.ep.traffic import traffic_bytes, traffic_matrix

    rng = np.random.default_rng(4)
    load = rng.integers(1, 9, (2, 8)).astype(float)
    p = eplb_layers(load, 4, 4)
    src = rng.integers(0, 5, (4, 2, 8))  # [N, L, E] ints
    s = traffic_matrix(src, p)
    assert s.shape == (2, 4, 4) and s.dtype == np.float64
    for layer in range(2):
        np.testing.assert_allclose(s[layer], src[:, layer].astype(float) @ p.layer(layer).share)
    one = traffic_matrix(src[:, 0], contiguous(8, 4))
    np.testing.assert_allclose(one, src[:, 0] @ contiguous(8, 4).share)
    b = traffic_bytes(np.array([[1, 2], [3, 4]], np.uint8), 4096, 2)
    assert b.dtype == np.float64 and b[1, 1] == 4 * 8192


def test_token_destinations_use_the_given_token_ids():
    from dodoco.ep.layout import eplb_layers
    from dodoco.ep.traffic import token_destinations

    p = eplb_layers(np.array([[100.0, 1, 1, 1]]), 2, 2).layer(0)  # expert 0: 3 replicas, 2 on rank 0
    assert p.copies[0].tolist() == [2, 1]
    topk = np.array([[0], [0], [0]])
    first = token_destinations(topk, p)
    shifted = token_destinations(topk, p, token_ids=np.array([1, 2, 3]))
    assert first[:, 0].tolist() == [0, 0, 1] and shifted[:, 0].tolist() == [0, 1, 0]
    np.testing.assert_array_equal(token_destinations(topk, p, token_ids=[1, 2, 3]), shifted)
    with pytest.raises(DodocoError, match="one layer"):
        token_destinations(topk, eplb_layers(np.ones((2, 4)), 2, 2))


def test_copy_and_dedup_traffic_of_three_dimensional_traces():
    from dodoco.ep.traffic import copy_traffic_from_tokens, dedup_traffic

    p = contiguous(4, 2)  # experts 0, 1 on rank 0; 2, 3 on rank 1
    by_rank = [np.array([[[0, 1]], [[0, 2]]]), np.array([[3, 2]])]  # rank 0's trace with an extra axis
    assert copy_traffic_from_tokens(by_rank, p).tolist() == [[3, 1], [0, 2]]
    assert dedup_traffic(by_rank, p).tolist() == [[2, 1], [0, 1]]


def test_rank_loads_of_narrow_counts_do_not_wrap_on_any_path():
    from dodoco.ep.layout import eplb_layers
    from dodoco.ep.loads import RankMap, replica_max_mean

    rng = np.random.default_rng(6)
    for E, N in ((64, 4), (64, 2), (32, 16), (40, 20)):  # blocks with b >= 16 and < 16, strided, gather
        c = rng.integers(200, 256, (3, 2, E)).astype(np.uint8)
        for p in (contiguous(E, N), round_robin(E, N), stack_layers([contiguous(E, N), round_robin(E, N)])):
            want = np.einsum("sle,...ler->slr", c.astype(float), p.share if p.layered else p.share[None])
            got = RankMap(p).loads(c)
            assert got.dtype.kind in "iu" and got.dtype.itemsize == 8
            np.testing.assert_array_equal(got, want)
            src = rng.integers(200, 256, (3, N, 2, E)).astype(np.uint8)
            local = RankMap(p).local(src, layers=True)
            want_local = np.stack(
                [
                    np.einsum(
                        "sle,le->sl",
                        src[:, i].astype(float),
                        (p.share if p.layered else np.broadcast_to(p.share, (2, E, N)))[:, :, i],
                    )
                    for i in range(N)
                ],
                axis=1,
            )
            np.testing.assert_array_equal(local, want_local)
        rep = eplb_layers(c[0].astype(float), N, N)
        np.testing.assert_allclose(RankMap(rep).loads(c), np.einsum("sle,len->sln", c.astype(float), rep.share))
    c = np.array([[4.0, 0, 0, 0], [0, 0, 0, 0]])
    with np.errstate(all="raise"):
        m = replica_max_mean(c, contiguous(4, 2))
    assert m[0] == 4.0 and np.isnan(m[1])


@pytest.mark.parametrize("E,N", [(4, 2), (8, 4), (64, 32), (34, 17), (48, 3)])
def test_rank_loads_of_any_one_hot_layout_equal_the_matrix_product(E, N):
    from dodoco.ep.layout import Placement
    from dodoco.ep.loads import RankMap

    rng = np.random.default_rng(E + N)
    blocks = np.arange(E) * N // E
    layouts = [
        blocks[::-1].copy(),
        (N - 1 - np.arange(E) % N),
        rng.permutation(blocks),
        np.sort(rng.integers(0, N, E)) if N <= E else blocks,
    ]
    for rank_of in layouts:
        share = np.zeros((E, N))
        share[np.arange(E), rank_of] = 1.0
        p = Placement("x", N, share, np.ones(E, np.int64), np.bincount(rank_of, minlength=N))
        c = rng.integers(0, 1000, (5, 2, E)).astype(np.uint16)
        np.testing.assert_array_equal(RankMap(p).loads(c), c.astype(np.int64) @ share.astype(np.int64))
        np.testing.assert_array_equal(RankMap(p).loads(c, dtype=np.uint32), c.astype(np.int64) @ share.astype(np.int64))
        src = rng.integers(0, 1000, (3, N, 2, E)).astype(np.uint16)
        want = np.einsum("snle,ne->snl", src.astype(np.int64), share.T.astype(np.int64))
        np.testing.assert_array_equal(RankMap(p).local(src, layers=True), want)
        np.testing.assert_array_equal(RankMap(p).local(src, layers=True, dtype=np.uint32), want)
        np.testing.assert_array_equal(RankMap(p).local(src[:, :, 0]), want[:, :, 0])


# ---- second round: what the first round left (bench/bench_mutation.py) ---------------------------------------


def test_rank_loads_and_local_loads_on_every_path_and_shape():
    from dodoco.ep.layout import Placement
    from dodoco.ep.loads import RankMap, replica_max_mean

    rng = np.random.default_rng(9)
    cases = [round_robin(34, 17), round_robin(35, 17), contiguous(5, 5), contiguous(40, 4), round_robin(48, 3)]
    for E, N in ((34, 17), (12, 5)):
        ranks = np.sort(rng.integers(0, N, (2, E)), axis=1)
        share = np.zeros((2, E, N))
        share[np.arange(2)[:, None], np.arange(E)[None], ranks] = 1.0
        cases.append(
            Placement("x", N, share, np.ones((2, E), np.int64), np.stack([np.bincount(r, minlength=N) for r in ranks]))
        )
    for p in cases:
        E, N, rm = p.num_experts, p.num_ranks, RankMap(p)
        sh = p.share if p.layered else np.broadcast_to(p.share, (2, E, N))
        for c in (
            rng.integers(200, 256, (3, 2, E)).astype(np.uint8),
            rng.integers(0, 120, (3, 2, E)).astype(np.int8),
            rng.random((3, 2, E)) * 100,
        ):
            want = np.einsum("sle,len->sln", c.astype(float), sh)
            got = rm.loads(c)
            np.testing.assert_allclose(got, want, rtol=1e-12)
            if c.dtype.kind in "iu":
                assert got.dtype.kind in "iu" and got.dtype.itemsize == 8
                np.testing.assert_array_equal(rm.loads(c, dtype=np.uint32), want)
            if not p.layered:
                np.testing.assert_allclose(rm.loads(c[0]), want[0], rtol=1e-12)  # [L, E] without leading axes
            src = rng.integers(200, 256, (2, 3, N, 2, E)).astype(np.uint8)  # two leading axes
            local = rm.local(src, layers=True)
            loc = np.stack([np.einsum("able,le->abl", src[:, :, i].astype(float), sh[:, :, i]) for i in range(N)], 2)
            assert local.shape == (2, 3, N, 2) and local.dtype.kind in "iu"
            np.testing.assert_array_equal(local, loc)
            np.testing.assert_array_equal(rm.local(src[0, 0], layers=True), loc[0, 0])  # [N, L, E]
            np.testing.assert_array_equal(rm.local(src, layers=True, dtype=np.uint32), loc)
        if not p.layered:
            first, second = rm.local(src[0, :, :, :1], layers=True), rm.local(src[0], layers=True)  # L = 1 then 2
            np.testing.assert_array_equal(first[..., 0], second[..., 0])
    big = np.full((2, 1, 6), 3_000_000_000, np.uint32)
    np.testing.assert_array_equal(RankMap(contiguous(6, 3)).loads(big, dtype=np.int64), np.full((2, 1, 3), 6e9))
    layered = stack_layers([eplb(np.array([9.0, 1, 1, 1]), 2, 2), eplb(np.array([1.0, 1, 1, 9]), 2, 2)])
    c = np.array([[8.0, 1, 1, 2], [2, 1, 1, 8]])
    per_layer = [replica_max_mean(c[i], layered.layer(i)) for i in range(2)]
    np.testing.assert_allclose(replica_max_mean(c, layered), per_layer)


def test_defaults_of_eplb_and_layered_gathers_of_many_experts_per_rank():
    from dodoco.ep.layout import Placement
    from dodoco.ep.loads import RankMap

    assert eplb(np.arange(8.0), 4).rank_node is None  # one node by default
    rng = np.random.default_rng(11)
    E, N = 64, 2  # about 32 experts per rank: the k >= 16 gather, per layer
    ranks = np.sort(rng.integers(0, N, (3, E)), axis=1)
    share = np.zeros((3, E, N))
    share[np.arange(3)[:, None], np.arange(E)[None], ranks] = 1.0
    p = Placement("x", N, share, np.ones((3, E), np.int64), np.stack([np.bincount(r, minlength=N) for r in ranks]))
    c = rng.integers(0, 200, (4, 3, E)).astype(np.uint8)
    np.testing.assert_array_equal(
        RankMap(p).loads(c), np.einsum("sle,len->sln", c.astype(np.int64), share.astype(np.int64))
    )
