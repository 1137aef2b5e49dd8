"""Core ep functions against independent computations, where the module tests leave room for wrong code
(found by bench/bench_mutation.py): each test names what it pins. ep.layout and ep.placements here; ep.steps
in test_steps_mutants.py, ep.traffic and ep.loads in test_loads_traffic_mutants.py."""

import dataclasses

import numpy as np
import pytest

from dodoco.ep.layout import contiguous, eplb, round_robin, stack_layers
from dodoco.errors import DodocoError


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


# ---- ep.placements: the policy as steps, options passed through, the spec's own checks -----------------------


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
