"""ep.steps against independent computations, where the module tests leave room for wrong code (found by
bench/bench_mutation.py): uniform splits, narrow counts, the edges of the checks, sources of every kind; each
test names what it pins."""

import numpy as np
import pytest

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


# ---- second round: what the first round left (bench/bench_mutation.py) ---------------------------------------


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
