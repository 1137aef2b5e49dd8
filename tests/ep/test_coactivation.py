"""Co-activation: pair counts against one-hot matrix products, the independence expectation by
hand and for uniform routing, summaries on planted structure, the clustering order."""

import numpy as np
import pytest

from dodoco.ep.coactivation import cluster_order, coactivation_rows, count_pairs, expected_pairs, lift, top_pairs
from dodoco.errors import DodocoError


def random_trace(T, L, K, E, seed=0):
    """topk[T, L, K]: K distinct experts per token and layer, uniformly at random."""
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((T, L, E)), axis=-1)[..., :K].astype(np.uint8)


def one_hot(topk, E):
    T, L, K = topk.shape
    X = np.zeros((L, T, E))
    for t in range(T):
        for l in range(L):
            for k in range(K):
                X[l, t, topk[t, l, k]] = 1
    return X


def test_hand_case():
    # tokens {0,1}, {1,0}, {2,3}: pair (0,1) twice, (2,3) once; experts 0,1 chosen twice, 2,3 once
    topk = np.array([[[0, 1]], [[1, 0]], [[2, 3]]], dtype=np.uint8)
    pc = count_pairs(topk, 4)
    assert pc.within[0].tolist() == [[2, 2, 0, 0], [2, 2, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert pc.marginal[0].tolist() == [2, 2, 1, 1]
    assert pc.across is None and pc.tokens == 3 and pc.K == 2


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_counts_equal_one_hot_products(chunk):
    # within[l] = X_l^T X_l and across[l] = X_l^T X_{l+1} for the token x expert indicator X_l
    # (a chunking bug, a missing transpose-add or layers paired the wrong way round fail here)
    topk = random_trace(301, 3, 3, 7, seed=1)
    X = one_hot(topk, 7)
    pc = count_pairs(topk, 7, chunk=chunk)
    for l in range(3):
        assert np.array_equal(pc.within[l], X[l].T @ X[l])
        assert np.array_equal(pc.marginal[l], X[l].sum(axis=0))
    for l in range(2):
        assert np.array_equal(pc.across[l], X[l].T @ X[l + 1])


def test_expected_pairs_by_hand_and_exact_for_uniform():
    # n = [2, 1, 1], T = 2, K = 2: (sum n)^2 - sum n^2 = 16 - 6 = 10, T K (K-1) = 4
    # E_01 = 4 * 2 * 1 / 10 = 0.8, E_12 = 4 * 1 * 1 / 10 = 0.4
    e = expected_pairs(np.array([2, 1, 1]), tokens=2, K=2)
    assert np.allclose(e, [[0, 0.8, 0.8], [0.8, 0, 0.4], [0.8, 0.4, 0]])
    # uniform marginals: every pair K(K-1)/(E(E-1)) of the tokens (the product of marginals,
    # T (K/E)^2 = 0.5 T here, would be 14% too high)
    T, K, E = 1000, 8, 64
    e = expected_pairs(np.full(E, T * K / E), tokens=T, K=K)
    off = e[~np.eye(E, dtype=bool)]
    assert np.allclose(off, T * K * (K - 1) / (E * (E - 1)))
    # and in general they sum to the observed ordered pairs T K (K-1)
    e = expected_pairs(np.random.default_rng(0).integers(1, 50, 16), tokens=100, K=4)
    assert np.isclose(e.sum(), 100 * 4 * 3)


def test_uniform_routing_looks_independent_and_planted_pairs_do_not():
    E, K = 16, 4
    uni = count_pairs(random_trace(20000, 1, K, E, seed=2), E, across=False)
    row = coactivation_rows(uni)[0]
    assert row["tv"] < 2 * row["tv_noise"]  # only sampling noise
    assert abs(row["max_lift"] - 1) < 0.2
    # plant: half the tokens choose 0 and 1 together
    topk = random_trace(20000, 1, K, E, seed=3)
    rows = np.arange(0, 20000, 2)
    topk[rows, 0, :2] = [0, 1]
    rest = np.argsort(np.random.default_rng(4).random((rows.size, E - 2)), axis=1)[:, : K - 2] + 2
    topk[rows, 0, 2:] = rest
    pc = count_pairs(topk, E, across=False)
    row = coactivation_rows(pc)[0]
    # the pair's experts also gain marginal mass, which the expectation absorbs: lift ~1.6
    assert row["tv"] > 2 * row["tv_noise"]
    assert row["top_share"] > row["top_share_indep"]
    exp = expected_pairs(pc.marginal, pc.tokens, pc.K)[0]
    a, b, n, li = top_pairs(pc.within[0], exp, m=1)[0]
    assert (a, b) == (0, 1) and n >= 10000 and li > 1.5


def test_top_pairs_order_and_lift_by_hand():
    w = np.array([[0, 5, 1], [5, 0, 5], [1, 5, 0]])
    e = np.array([[0, 2.5, 1], [2.5, 0, 10], [1, 10, 0]])
    # ties on 5 co-selections: lower (a, b) first
    assert top_pairs(w, e, m=2) == [(0, 1, 5, 2.0), (1, 2, 5, 0.5)]
    li = lift(w, e)
    assert np.isnan(li[0, 0]) and li[0, 2] == 1.0


def test_cluster_order_upgma_by_hand():
    # similarity: 0~1 (9), 2~3 (8), then {0,1} and {2,3} at mean 1 -> ((0,1),(2,3))
    s = np.array([[0, 9, 1, 1], [9, 0, 1, 1], [1, 1, 0, 8], [1, 1, 8, 0]], float)
    order = cluster_order(s).tolist()
    assert sorted(order) == [0, 1, 2, 3]
    assert {frozenset(order[:2]), frozenset(order[2:])} == {frozenset({0, 1}), frozenset({2, 3})}


def test_cluster_order_recovers_hidden_blocks():
    # 3 blocks of 5 experts with strong within-block similarity, labels shuffled: each block must
    # be contiguous in the order (index order or sorting by marginals would split them)
    rng = np.random.default_rng(5)
    group = rng.permutation(np.repeat(np.arange(3), 5))
    s = np.where(group[:, None] == group[None, :], 3.0, 1.0) + rng.random((15, 15)) * 0.1
    order = cluster_order(s)
    g = group[order]
    assert sorted(order.tolist()) == list(range(15))
    assert (np.diff(g) != 0).sum() == 2


def test_bad_input_names_value_and_fix():
    with pytest.raises(DodocoError, match=r"expert 9 but E=8"):
        count_pairs(np.full((2, 1, 2), 9, dtype=np.uint8), 8)
    with pytest.raises(DodocoError, match=r"shape \[T, L, K\]"):
        count_pairs(np.zeros((4, 2), dtype=np.uint8), 8)
    with pytest.raises(DodocoError, match="within-layer"):
        coactivation_rows(count_pairs(random_trace(10, 2, 2, 4), 4, within=False))


def test_worker_processes_count_the_same():
    # layers split over forked processes (the path large traces take) give identical counts
    topk = random_trace(500, 5, 3, 9, seed=6)
    one, two = count_pairs(topk, 9, workers=1), count_pairs(topk, 9, workers=2, chunk=64)
    for a, b in ((one.marginal, two.marginal), (one.within, two.within), (one.across, two.across)):
        assert np.array_equal(a, b)
    sh1 = count_pairs(topk, 9, permute_seed=3, workers=1)
    sh3 = count_pairs(topk, 9, permute_seed=3, workers=3)
    assert np.array_equal(sh1.across, sh3.across) and sh3.within is None


def naive_upgma_order(s):
    """Average linkage by definition: cluster distance = mean leaf distance over all leaf pairs."""
    s = np.asarray(s, float)
    s = (s + s.T) / 2
    leaf = s.max() - s
    clusters = {e: [e] for e in range(s.shape[0])}  # representative (lowest leaf) -> members
    orders = {e: [e] for e in range(s.shape[0])}
    while len(clusters) > 1:
        keys = sorted(clusters)
        best = None
        for x in range(len(keys)):
            for y in range(x + 1, len(keys)):
                a, b = keys[x], keys[y]
                d = np.mean([leaf[i, j] for i in clusters[a] for j in clusters[b]])
                if best is None or d < best[0] - 1e-12:
                    best = (d, a, b)
        _, a, b = best
        left, right = orders[a], orders[b]
        cands = [(leaf[lo[-1], ro[0]], lo + ro) for lo in (left, left[::-1]) for ro in (right, right[::-1])]
        orders[a] = min(cands, key=lambda c: c[0])[1]
        clusters[a] += clusters.pop(b)
        del orders[b]
    return next(iter(orders.values()))


@pytest.mark.parametrize("seed", range(12))
def test_cluster_order_is_average_linkage_by_definition(seed):
    # against UPGMA computed from its definition (mean leaf distance between clusters); weighted
    # (WPGMA) or single/complete linkage merge differently on several of these matrices
    s = np.random.default_rng(seed).random((8, 8)) * 10
    assert cluster_order(s).tolist() == naive_upgma_order(s)


def test_lift_is_taken_only_over_pairs_expected_often_enough():
    # 4 experts, K = 2, 100 tokens: 97 choose (0, 1), 3 choose (2, 3): the rare pair's lift is huge but
    # rests on an expected count below 5, so it is left out of max_lift at min_expected = 5
    from dodoco.ep.coactivation import PairCounts

    within = np.zeros((1, 4, 4), np.int64)
    within[0, 0, 1] = within[0, 1, 0] = 97
    within[0, 2, 3] = within[0, 3, 2] = 3
    marginal = np.array([[97, 97, 3, 3]])
    pc = PairCounts(within=within, across=None, marginal=marginal, tokens=100, K=2)
    exp = expected_pairs(marginal, 100, 2)[0]
    a, b = np.triu_indices(4, 1)
    obs, e = within[0][a, b].astype(float), exp[a, b]
    for min_expected in (0.0, 5.0, 1e6):
        keep = e >= min_expected
        row = coactivation_rows(pc, min_expected=min_expected, n_noise=1)[0]
        want = (obs[keep] / e[keep]).max() if keep.any() else np.nan
        assert np.isclose(row["max_lift"], want, equal_nan=True)
    lifts = obs / e
    assert lifts[e < 5].max() > 10 * lifts[e >= 5].max()  # the filter changes the answer
