"""Core ep functions against independent computations, where the module tests leave room for wrong code
(found by bench/bench_mutation.py): each test names what it pins."""

import dataclasses

import numpy as np
import pytest

from dodoco.ep.layout import contiguous, eplb, round_robin, stack_layers
from dodoco.ep.steps import uniform_split
from dodoco.errors import DodocoError
from dodoco.replay.plan import synth_topk


@pytest.mark.parametrize("seed", range(6))
def test_uniform_split_in_whole_tokens_is_the_synthesised_tokens_dealt_round_robin(seed):
    # brute force: top-k tokens that reproduce the window (replay.plan.synth_topk), token t on rank t mod N
    rng = np.random.default_rng(seed)
    for _ in range(40):
        E, N = int(rng.integers(2, 10)), int(rng.integers(1, 6))
        K, T = int(rng.integers(1, E + 1)), int(rng.integers(1, 30))
        topk = np.stack([rng.choice(E, K, replace=False) for _ in range(T)])
        c = np.bincount(topk.ravel(), minlength=E)[None]  # [L=1, E]
        tokens = synth_topk(c[0], T, K)
        want = np.stack([np.bincount(tokens[np.arange(T) % N == i].ravel(), minlength=E) for i in range(N)])
        got = uniform_split(c, N, K)
        np.testing.assert_array_equal(got[:, 0], want)
        assert (got.sum(axis=0) == c).all() and (got.sum(axis=-1) % K == 0).all()


def test_uniform_split_with_k_1_is_the_largest_remainder_dealing():
    c = np.array([[5, 0, 3, 7], [1, 1, 1, 1]])
    got = uniform_split(c, 3)
    # floor(c / 3) = [1, 0, 1, 2] each; leftovers dealt in turn from rank 0 across the experts of a
    # layer: expert 0's two to ranks 0 and 1, expert 3's one to rank 2
    np.testing.assert_array_equal(got[:, 0], [[2, 0, 1, 2], [2, 0, 1, 2], [1, 0, 1, 3]])
    np.testing.assert_array_equal(got[:, 1], [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]])


# ---- ep.layout: EPLB against a loop-by-loop reference of its documented policy -------------------------------


def _ref_pack(w, num_packs):
    """balanced_packing by its docstring, one row: heaviest first (ties: lower index) onto the least
    loaded pack with room (ties: lower pack) -> (pack[n], slot[n]); one item per pack: item i in pack i."""
    n, cap = len(w), len(w) // num_packs
    if cap == 1:
        return list(range(n)), [0] * n
    loads, filled = [0.0] * num_packs, [0] * num_packs
    pack, slot = [0] * n, [0] * n
    for item in sorted(range(n), key=lambda i: (-w[i], i)):
        p = min((q for q in range(num_packs) if filled[q] < cap), key=lambda q: (loads[q], q))
        pack[item], slot[item] = p, filled[p]
        loads[p] += w[item]
        filled[p] += 1
    return pack, slot


def _ref_replicate(w, num_physical):
    count, phys = [1] * len(w), list(range(len(w)))
    for _ in range(num_physical - len(w)):
        e = max(range(len(w)), key=lambda i: (w[i] / count[i], -i))
        phys.append(e)
        count[e] += 1
    return phys, count


def _ref_eplb(w, N, R, nodes, groups):
    """copies[E, N] of one layer: groups packed onto nodes, then replicate and pack inside each node."""
    E = len(w)
    gsize = E // groups
    gw = [sum(w[g * gsize : (g + 1) * gsize]) for g in range(groups)]
    gpack, gslot = _ref_pack(gw, nodes)
    copies = np.zeros((E, N), np.int64)
    for m in range(nodes):
        mine = sorted((gslot[g], g) for g in range(groups) if gpack[g] == m)
        experts = [g * gsize + j for _, g in mine for j in range(gsize)]
        phys, count = _ref_replicate([w[e] for e in experts], (E + R) // nodes)
        pw = [w[experts[i]] / count[i] for i in phys]
        rank, _ = _ref_pack(pw, N // nodes)
        for i, r in zip(phys, rank):
            copies[experts[i], m * (N // nodes) + r] += 1
    return copies


@pytest.mark.parametrize(
    "E,N,R,nodes,groups",
    [
        (8, 4, 0, 1, 1),
        (8, 4, 4, 1, 1),
        (12, 4, 4, 1, 1),
        (16, 4, 4, 2, 4),
        (16, 8, 8, 2, 8),
        (12, 6, 6, 3, 6),
        (16, 4, 0, 2, 2),
    ],
)
def test_eplb_equals_the_reference_policy(E, N, R, nodes, groups):
    from dodoco.ep.layout import eplb_layers

    rng = np.random.default_rng(E * N + R)
    load = rng.integers(0, 6, (3, E)).astype(float) * rng.integers(1, 4, E)  # ties on purpose
    hier = nodes > 1
    p = eplb_layers(load, N, R, nodes, groups if hier else None, hierarchical=hier)
    for layer in range(3):
        want = _ref_eplb(list(load[layer]), N, R, nodes if hier else 1, groups if hier else 1)
        np.testing.assert_array_equal(p.layer(layer).copies, want)
    assert p.name == "eplb" and p.num_ranks == N
    assert p.replicas.dtype.kind == "i" and p.slots_per_rank.dtype.kind == "i"
    np.testing.assert_array_equal(p.slots_per_rank, np.full((3, N), (E + R) // N))
    if nodes > 1:
        np.testing.assert_array_equal(p.rank_node, np.arange(N) // (N // nodes))
    else:
        assert p.rank_node is None


def test_global_eplb_on_several_nodes_records_the_nodes_and_defaults_are_global():
    from dodoco.ep.layout import eplb_layers

    load = np.array([[9.0, 1, 1, 1, 5, 5, 2, 2]])
    p = eplb_layers(load, 4, 0, num_nodes=2)  # global policy (hierarchical defaults to False)
    np.testing.assert_array_equal(p.rank_node, [0, 0, 1, 1])
    np.testing.assert_array_equal(p.copies, eplb_layers(load, 4, 0, 2, None, False).copies)
    np.testing.assert_array_equal(p.copies[0], _ref_eplb(list(load[0]), 4, 0, 1, 1))
    assert eplb_layers(load, 4).rank_node is None
    single = eplb(load[0], 4)
    np.testing.assert_array_equal(single.copies, p.copies[0])


@pytest.mark.parametrize(
    "args",
    [
        dict(N=0),
        dict(N=4, num_nodes=0),
        dict(N=4, num_nodes=2, num_groups=0, hierarchical=True),
        dict(N=4, num_nodes=2, num_groups=3, hierarchical=True),
        dict(N=4, num_nodes=2, num_groups=2 * 3, hierarchical=True),
        dict(N=4, num_redundant=-4),
        dict(N=3),
        dict(N=4, num_nodes=3),
    ],
)
def test_eplb_refuses_impossible_sizes(args):
    from dodoco.ep.layout import eplb_layers

    with pytest.raises(DodocoError):
        eplb_layers(np.ones((1, 8)), **args)


def test_eplb_smallest_valid_sizes():
    from dodoco.ep.layout import eplb_layers

    assert eplb_layers(np.ones((1, 8)), 1).slots_per_rank.tolist() == [[8]]
    p = eplb_layers(np.arange(1.0, 9.0)[None], 2, 0, num_nodes=1, num_groups=1, hierarchical=True)
    np.testing.assert_array_equal(p.copies[0], _ref_eplb(list(np.arange(1.0, 9.0)), 2, 0, 1, 1))
    with pytest.raises(DodocoError, match="shape"):
        eplb_layers(np.ones(8), 2)
    with pytest.raises(DodocoError, match="shape"):
        eplb_layers(np.ones((2, 0)), 2)


@pytest.mark.parametrize("E,N", [(1, 1), (4, 4), (5, 2), (6, 1)])
def test_one_hot_layouts_at_the_edges(E, N):
    for make, name in ((contiguous, "contiguous"), (round_robin, "round_robin")):
        p = make(E, N)
        assert p.name == name and p.num_ranks == N and p.num_experts == E
        assert p.replicas.dtype == np.int64 and p.replicas.tolist() == [1] * E
        assert p.slots_per_rank.dtype == np.int64 and p.slots_per_rank.sum() == E
        assert p.rank_of.dtype.kind == "i"
    for bad in ((0, 1), (1, 0), (3, 4)):
        with pytest.raises(DodocoError):
            contiguous(*bad)


def test_stack_layers_and_with_nodes():
    a, b = contiguous(6, 3), round_robin(6, 3)
    a2 = a.with_nodes([0, 0, 1])
    s = stack_layers([a2, dataclasses.replace(b, name="contiguous")])
    assert s.name == "contiguous" and s.num_ranks == 3 and s.layered
    np.testing.assert_array_equal(s.layer(1).share, b.share)
    np.testing.assert_array_equal(s.slots_per_rank, [[2, 2, 2], [2, 2, 2]])
    np.testing.assert_array_equal(s.rank_node, [0, 0, 1])
    assert a2.rank_node.dtype == np.int64 and a.rank_node is None
    with pytest.raises(DodocoError, match="one node per rank"):
        a.with_nodes([0, 1])


def test_balanced_packing_and_replication_against_the_reference():
    from dodoco.ep.layout import balanced_packing, replicate_experts

    rng = np.random.default_rng(3)
    w = rng.integers(0, 4, (20, 12)).astype(float)  # many ties
    for packs in (1, 2, 3, 4, 6, 12):
        pack, slot = balanced_packing(w, packs)
        assert pack.dtype == np.int64 and slot.dtype == np.int64
        for x in range(w.shape[0]):
            assert (pack[x].tolist(), slot[x].tolist()) == _ref_pack(list(w[x]), packs)
    phys, count = replicate_experts(w, 17)
    assert count.dtype == np.int64
    for x in range(w.shape[0]):
        assert (phys[x].tolist(), count[x].tolist()) == _ref_replicate(list(w[x]), 17)


# ---- ep.steps: narrow counts, the edges of the checks, sources of every kind ---------------------------------


def test_narrow_counts_are_summed_without_wrapping():
    from dodoco.ep.steps import source_of, sum_units

    counts = np.full((600, 2, 3), 250, np.uint8)  # any two rows of uint8 250 wrap
    counts[:, 1] = np.arange(600)[:, None] % 7
    want = counts.astype(np.int64).sum(axis=0)
    np.testing.assert_array_equal(sum_units(counts), want)
    np.testing.assert_array_equal(sum_units(counts, np.arange(0, 600, 3)), counts[::3].astype(np.int64).sum(0))
    src = source_of(counts, 1)
    np.testing.assert_array_equal(src.steps(600)[0], want)
    np.testing.assert_array_equal(src.aggregate(), want)
    np.testing.assert_array_equal(src.totals(4, 150)[0].sum(axis=0), want.sum(axis=-1))
    assert src.totals(4, 150).dtype == np.int64
    signed = counts.astype(np.int16)
    np.testing.assert_array_equal(sum_units(signed), want)
    np.testing.assert_array_equal(source_of(signed, 1).steps(2), src.steps(2))


def test_counts_checks():
    from dodoco.ep.steps import source_of, window_source

    for bad in (
        np.ones((0, 2, 2), np.uint32),
        np.ones((2, 2), np.uint32),
        np.ones((2, 2, 2), float),
        -np.ones((2, 1, 2), np.int64),
    ):
        with pytest.raises(DodocoError):
            source_of(bad)
        with pytest.raises(DodocoError):
            window_source(bad)
    assert source_of(np.zeros((2, 1, 2), np.int64)).steps(1).tolist() == [[[0, 0]], [[0, 0]]]
    assert source_of(np.ones((2, 0, 2), np.uint32)).n_steps(1) == 2  # no layers is still units


@pytest.mark.parametrize("N,B", [(1, 1), (1, 4), (4, 1), (2, 2)])
def test_the_smallest_steps_are_allowed(N, B):
    from dodoco.ep.steps import feasible_pairs, require_steps, source_of

    require_steps(4, N, B)
    src = source_of(np.ones((4, 1, 2), np.uint32))
    src.check(N, B)
    pairs, skipped = feasible_pairs(src, [N, 8], [B])
    assert (N, B) in pairs and not [s for s in skipped if s[:2] == (N, B)]
    assert [s[:2] for s in skipped] == [(8, B)] and "needs" in skipped[0][2] and "the run has 4" in skipped[0][2]


def test_the_check_names_what_it_checked():
    from dodoco.ep.steps import feasible_pairs, source_of

    src = source_of(np.ones((3, 1, 2), np.uint32))
    with pytest.raises(DodocoError, match="the held-out part has 3"):
        src.check(2, 2, "the held-out part")
    with pytest.raises(DodocoError, match="must be >= 1"):
        src.check(0, 1)
    with pytest.raises(DodocoError, match="must be >= 1"):
        feasible_pairs(src, [0], [1])
    pairs, skipped = feasible_pairs(src, [1, 2, 4], [1, 2], what="the units")
    assert pairs == [(1, 1), (2, 1), (1, 2)] and all("the units has 3" in s[2] for s in skipped)
    assert [s[:2] for s in skipped] == [(4, 1), (2, 2), (4, 2)]


def test_decode_blocks_have_their_own_steps_and_holders():
    from dodoco.ep.steps import StepSource

    level1 = np.arange(2 * 5 * 1 * 3, dtype=np.uint32).reshape(2, 5, 1, 3)  # 2 blocks of 5 units
    src = StepSource(level1, int(level1.sum(-1).max()), order=np.array([4, 0, 3, 1, 2]))
    assert src.n_steps(2) == 4 and src.steps(2).shape == (4, 1, 3)
    np.testing.assert_array_equal(src.steps(2)[2], level1[1, 0:2].sum(0))  # block 1, first step
    held = src.holders(2, 1)
    assert held.shape == (4, 2, 1) and held[:, :, 0].tolist() == [[4, 0], [3, 1], [4, 0], [3, 1]]
    step, rank = src.unit_steps(2, 1)
    assert step.tolist() == [0, 1, -1, 1, 0] and rank.tolist() == [1, 1, -1, 0, 0]
    assert src.order.dtype == np.int64 and StepSource(level1, 1).order.tolist() == [0, 1, 2, 3, 4]
    like = src.like(level1[..., :2])
    assert like.order.tolist() == [4, 0, 3, 1, 2] and like.dtype(3) == src.dtype(3)
    np.testing.assert_array_equal(like.steps(2), src.steps(2)[..., :2])


def test_levels_are_summed_from_the_largest_cached_level_in_a_wide_enough_type():
    from dodoco.ep.steps import source_of

    rng = np.random.default_rng(5)
    counts = rng.integers(0, 2**20, (24, 2, 3)).astype(np.uint32)
    src = source_of(counts, 2)
    order = src.order
    for G in (2, 4, 3, 6, 12, 8, 24):  # 4 from 2, 6 from 3 or 2, 12 from 6 or 4, 24 from 12 or 8
        want = counts[order[: 24 // G * G]].astype(np.int64).reshape(24 // G, G, 2, 3).sum(1)
        np.testing.assert_array_equal(src.level(G)[0], want)
        assert src.level(G).dtype.itemsize >= 8 or want.max() < np.iinfo(src.level(G).dtype).max
    for N, B in ((3, 4), (2, 6), (4, 3)):
        want = counts[order[: 24 // (N * B) * N * B]].astype(np.int64).reshape(-1, N, B, 2, 3).sum(2)
        np.testing.assert_array_equal(src.ranks(N, B), want)
        np.testing.assert_array_equal(src.totals(N, B), want.sum(-1))


def test_level_types_hold_their_sums():
    from dodoco.ep.steps import StepSource

    src = StepSource(np.zeros((1, 4, 1, 2), np.uint8), 200)
    assert src.dtype(1) == np.uint8 and src.dtype(2) == np.uint16  # 400 > 255
    assert StepSource(np.zeros((1, 4, 1, 2), np.uint8), 255).dtype(1) == np.uint16  # max itself is reserved
    assert StepSource(np.zeros((1, 4, 1, 2), np.uint8), 1, np.uint32).dtype(1) == np.uint32
    assert StepSource(np.zeros((1, 4, 1, 2), np.uint8), 2**33).dtype(1) == np.int64


def test_windows_of_every_kind():
    from dodoco.ep.steps import WindowSource, window_source

    counts = np.array([[[4, 0, 2]], [[2, 4, 0]]], np.uint32)  # window [[6, 4, 2]], 6 tokens of K = 2
    w = window_source(counts, K=2)
    assert w.K == 2 and w.dtype(7) == np.int64 and w.n_units == 1 and w.order.tolist() == [0]
    np.testing.assert_array_equal(w.ranks(2, 9)[0, :, 0], uniform_split(np.array([[6, 4, 2]]), 2, 2)[:, 0])
    np.testing.assert_array_equal(w.totals(3, 1)[0, :, 0], [4, 4, 4])  # 2 whole tokens each
    assert w.totals(3, 1).dtype == np.int64 and w.level(5).shape == (1, 1, 1, 3)
    assert window_source(counts).K == 1 and w.aggregate().tolist() == [[6, 4, 2]]
    assert WindowSource(np.array([[7, 1]])).like(np.array([[[[3, 5]]]])).steps(4).tolist() == [[[3, 5]]]
    loads = w.like(np.array([[[[5, 1, 6]]]]))  # other per-unit values split evenly (in units of 1)
    np.testing.assert_array_equal(
        w.rank_rows(3, 1, loads.level(1))[0, :, 0], uniform_split(np.array([[5, 1, 6]]), 3)[:, 0]
    )
    assert int(WindowSource(np.array([[7, 1], [0, 2]]))._unit_total) == 8


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


# ---- ep.placements: the policy as steps, options passed through, the spec's own checks ------------------------


def test_evaluated_source_and_plan_placement_follow_the_one_policy():
    from dodoco.ep.placements import evaluated_source, fit_data, fit_eval_split, plan_placement
    from dodoco.ep.steps import source_of, window_source

    rng = np.random.default_rng(7)
    counts = rng.integers(0, 50, (20, 2, 8)).astype(np.uint32)
    plan, src = evaluated_source(["contiguous"], counts, seed=3)
    assert plan.part == "all" and src.steps(4).tolist() == source_of(counts, 3).steps(4).tolist()
    own = window_source(counts)
    assert evaluated_source(["round_robin"], counts, 3, source=own)[1] is own
    plan, src = evaluated_source(["contiguous", "eplb"], counts, seed=3, frac=0.25)
    fit_idx, eval_idx = fit_eval_split(20, 0.25, 3)
    assert plan.part == "held-out" and plan.fit_idx.tolist() == fit_idx.tolist() and len(eval_idx) == 15
    assert src.steps(5).tolist() == source_of(counts, 3, idx=eval_idx).steps(5).tolist()
    p = plan_placement("eplb", 4, counts, plan)
    want = eplb(np.zeros(8), 4)  # shape only
    assert p.num_ranks == 4 and p.layered and p.share.shape == (2, 8, 4) and want.num_ranks == 4
    from dodoco.ep.layout import eplb_layers

    np.testing.assert_array_equal(p.copies, eplb_layers(fit_data(counts, fit_idx).load, 4).copies)
    assert plan_placement("round_robin", 4, counts, plan).name == "round_robin"
    # a placement's options reach its layout: 4 redundant replicas, fitted on the same units
    more = plan_placement("eplb", 4, counts, plan, num_redundant=4)
    np.testing.assert_array_equal(more.copies, eplb_layers(fit_data(counts, fit_idx).load, 4, 4).copies)
    assert int(more.copies.sum()) == 2 * (8 + 4)


def test_eplb_options_reach_the_layout():
    from dodoco.ep.layout import eplb_layers
    from dodoco.ep.placements import FitData, build_placement, default_redundant

    load = np.arange(1.0, 17.0)[None].repeat(2, 0)
    fit = FitData(load)
    p = build_placement("eplb", 16, 4, fit, num_redundant=4, num_nodes=2, num_groups=4, hierarchical=True)
    np.testing.assert_array_equal(p.copies, eplb_layers(load, 4, 4, 2, 4, True).copies)
    assert p.rank_node.tolist() == [0, 0, 1, 1]
    q = build_placement("eplb", 16, 4, fit)  # defaults: R = default_redundant, global, one node
    np.testing.assert_array_equal(q.copies, eplb_layers(load, 4, default_redundant(16, 4)).copies)
    assert default_redundant(4, 4) == 0 and default_redundant(3, 4) == 1 and default_redundant(5, 4) == 3


def test_fit_eval_split_edges_and_its_seed():
    from dodoco.ep.placements import evaluation_plan, fit_eval_split

    fit, ev = fit_eval_split(10, 0.3, 4)
    perm = np.random.default_rng(5).permutation(10)
    assert fit.tolist() == sorted(perm[:3].tolist()) and ev.tolist() == sorted(perm[3:].tolist())
    assert fit_eval_split(10)[0].tolist() == fit_eval_split(10, 0.5, 0)[0].tolist()
    assert evaluation_plan(["eplb"], 10).fit_idx.tolist() == fit_eval_split(10, 0.5, 0)[0].tolist()
    assert [len(x) for x in fit_eval_split(2, 0.5, 0)] == [1, 1]
    for frac in (0.0, 0.96, 1.0):
        with pytest.raises(DodocoError, match="empty fit or evaluation part"):
            fit_eval_split(10, frac, 0)


def test_placement_spec_checks_its_own_fields_and_traces_need_both_arrays():
    from dodoco.ep.placements import FitData, PlacementSpec, build_placement

    def make(**kw):
        return PlacementSpec(name="x", target=lambda E, N, fit: contiguous(E, N), summary="s", **kw)

    make(), make(fitted=True, fit_on="counts"), make(fitted=True, fit_on="traces")
    for bad in (
        dict(fit_on="counts"),
        dict(fitted=True),
        dict(fit_on="none", fitted=True),
        dict(fit_on="nothing"),
        dict(fitted=True, fit_on="nothing"),
    ):
        with pytest.raises(ValueError):
            make(**bad)
    for fit in (
        FitData(np.ones((1, 8))),
        FitData(np.ones((1, 8)), topk=np.zeros((2, 1, 2))),
        FitData(np.ones((1, 8)), offsets=np.array([0, 2])),
    ):
        with pytest.raises(DodocoError, match="token traces"):
            build_placement("coact", 8, 2, fit)


def test_trace_subset_takes_units_in_the_order_given():
    from dodoco.ep.placements import trace_subset

    topk = np.arange(10).reshape(10, 1, 1)
    offsets = [0, 3, 3, 7, 10]  # units of 3, 0, 4, 3 tokens
    t, o = trace_subset(topk, offsets, [3, 0, 1])
    assert t[:, 0, 0].tolist() == [7, 8, 9, 0, 1, 2] and o.tolist() == [0, 3, 6, 6] and o.dtype == np.int64


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


def test_eplb_is_global_by_default():
    from dodoco.ep.layout import eplb_layers
    from dodoco.ep.placements import FitData, build_placement

    w = np.array([[1.0, 1, 0, 0, 0, 0, 3, 2, 3, 2, 2, 3]])  # one node: the hierarchical order differs here
    glob, hier = eplb_layers(w, 4, 4, 1, None, False), eplb_layers(w, 4, 4, 1, None, True)
    assert not np.array_equal(glob.copies, hier.copies)
    np.testing.assert_array_equal(eplb_layers(w, 4, 4).copies, glob.copies)
    np.testing.assert_array_equal(eplb(w[0], 4, 4).copies, glob.copies[0])
    np.testing.assert_array_equal(build_placement("eplb", 12, 4, FitData(w), num_redundant=4).copies, glob.copies)


def test_windows_split_in_the_runs_own_tokens(tmp_path):
    from dodoco.ep.steps import WindowSource, run_source, window_source
    from dodoco.findings.synthetic import write_counts_run
    from dodoco.store import open_run

    w = window_source(np.array([[[6, 4, 2]]], np.uint32), K=2)  # 6 tokens over 4 ranks: 2, 2, 1, 1 tokens
    assert w.totals(4, 1)[0, :, 0].tolist() == [4, 4, 2, 2] and w.ranks(4, 3).tolist() == w.ranks(4, 1).tolist()
    assert WindowSource(np.array([[7, 1]])).K == 1 and w.like(np.array([[[[5, 3]]]])).K == 1
    np.testing.assert_array_equal(w.like(np.array([[[[5, 3, 1]]]])).ranks(2, 1)[0, :, 0], [[3, 1, 1], [2, 2, 0]])
    counts = np.arange(24, dtype=np.uint32).reshape(4, 2, 3)  # 120 and 156 assignments per layer
    for K, N in ((3, 7), (None, 7)):
        run = open_run(
            write_counts_run(tmp_path / f"w{K}", counts, model="m", condition="c", K=K, granularity="window")
        )
        want = uniform_split(counts.astype(np.int64).sum(0), N, K or 1)
        np.testing.assert_array_equal(run_source(run).ranks(N, 1)[0], want)
        assert run_source(run) is run_source(run, 0)


def test_unit_steps_when_steps_outnumber_or_undernumber_ranks():
    from dodoco.ep.steps import StepSource, source_of

    src = source_of(np.ones((6, 1, 2), np.uint32), 0)
    step, rank = src.unit_steps(3, 1)  # 2 steps of 3 ranks
    held = src.holders(3, 1)
    for t in range(2):
        for i in range(3):
            assert step[held[t, i, 0]] == t and rank[held[t, i, 0]] == i
    one = source_of(np.ones((1, 1, 2), np.uint32))
    assert [x.tolist() for x in one.unit_steps(1, 1)] == [[0], [0]]
    assert source_of(np.ones((3, 1, 2), np.uint32)).order.tolist() == np.random.default_rng(0).permutation(3).tolist()
    empty = StepSource(np.zeros((1, 0, 1, 2), np.uint8), 1)
    from dodoco.ep.steps import feasible_pairs

    assert feasible_pairs(empty, [1], [1])[0] == [] and feasible_pairs(empty, [1], [1])[1][0][:2] == (1, 1)
    with pytest.raises(DodocoError, match="the run has 0"):
        empty.check(1, 1)


def test_narrow_levels_and_totals_keep_their_sums_and_types():
    from dodoco.ep.steps import StepSource, source_of, sum_units

    level1 = np.full((1, 6, 1, 2), 200, np.uint8)
    src = StepSource(level1, 200)
    for G in (2, 3, 6):
        assert src.level(G).dtype.itemsize >= 2 and (src.level(G) == 200 * G).all()
    assert src.totals(2, 1).dtype == np.int64 and (src.totals(2, 3) == 1200).all()
    c = np.full((4, 1, 2), 3_000_000_000, np.uint32)
    assert source_of(c).totals(2, 1).dtype == np.int64 and source_of(c).totals(2, 1)[0, 0, 0] == 6_000_000_000
    assert sum_units(np.ones((3, 2), np.int16)).dtype == np.int64 and sum_units(c).dtype == np.int64


def test_uniform_split_per_layer_and_with_leading_axes():
    c = np.array([[5, 1, 0, 2], [3, 3, 2, 0]])  # two layers of 4 tokens of K = 2
    got = uniform_split(c, 3, 2)
    for layer in range(2):
        np.testing.assert_array_equal(got[:, layer], uniform_split(c[layer : layer + 1], 3, 2)[:, 0])
    batch = uniform_split(np.stack([c, c[::-1]]), 3, 2)  # c[..., L, E] with a leading axis
    assert batch.shape == (2, 3, 2, 4)
    np.testing.assert_array_equal(batch[1], uniform_split(c[::-1], 3, 2))


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


def test_policy_defaults_and_trace_placements_planned_on_traces():
    from dodoco.ep.placements import evaluated_source, fit_eval_split, plan_placement

    rng = np.random.default_rng(3)
    counts = rng.integers(0, 9, (12, 1, 8)).astype(np.uint32)
    plan, src = evaluated_source(["eplb"], counts)
    assert plan.fit_idx.tolist() == fit_eval_split(12, 0.5, 0)[0].tolist()
    topk = np.stack([rng.choice(8, 2, replace=False) for _ in range(12 * 4)])[:, None, :].astype(np.uint8)
    offsets = np.arange(0, 12 * 4 + 1, 4)
    p = plan_placement("coact", 2, counts, plan, (topk, offsets))
    assert p.num_ranks == 2 and p.name == "coact"


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
