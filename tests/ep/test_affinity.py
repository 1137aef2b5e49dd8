"""Cross-layer affinity: information by hand and by explicit sums, the shuffled control, planted
and absent affinity."""

import numpy as np
import pytest

from dodoco.ep.affinity import affinity_rows, conditional, joint_information, shuffled_counts, top_mass
from dodoco.ep.coactivation import count_pairs
from dodoco.errors import DodocoError

from tests.ep.test_coactivation import random_trace


def test_information_by_hand():
    # perfect dependence on 2 experts: 1 bit, nothing left
    info = joint_information(np.eye(2))
    assert np.isclose(info["mi"], 1) and np.isclose(info["h_next"], 1)
    assert np.isclose(info["h_cond"], 0) and np.isclose(info["uncertainty_coef"], 1)
    assert np.isclose(joint_information(np.ones((2, 2)))["mi"], 0)
    # [[3,1],[1,3]]/8: MI = 0.75 log2 1.5 + 0.25 log2 0.5 = 0.18872 bits
    assert np.isclose(joint_information(np.array([[3, 1], [1, 3]]))["mi"], 0.75 * np.log2(1.5) - 0.25)


def test_information_equals_explicit_sums():
    j = np.random.default_rng(0).integers(0, 20, (2, 5, 6)).astype(float)
    j[0, 1] = 0  # an unused expert row
    info = joint_information(j)
    for l in range(2):
        p = j[l] / j[l].sum()
        pa, pb = p.sum(1), p.sum(0)
        mi = sum(p[a, b] * np.log2(p[a, b] / (pa[a] * pb[b])) for a in range(5) for b in range(6) if p[a, b] > 0)
        h = -sum(x * np.log2(x) for x in pb if x > 0)
        assert np.isclose(info["mi"][l], mi) and np.isclose(info["h_next"][l], h)
    c = conditional(j)
    assert np.allclose(c[0, 1], 0) and np.allclose(c[1].sum(axis=1), 1)


def test_top_mass_by_hand():
    # rows a=0: [6, 2] (p(a)=0.5, best next 0.75), a=1: [0, 8] (p(a)=0.5, best next 1)
    given, indep = top_mass(np.array([[6, 2], [0, 8]]), 1)
    assert np.isclose(given, 0.5 * 0.75 + 0.5 * 1.0) and np.isclose(indep, 10 / 16)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_top_mass_against_its_definition(m):
    # joint[a, b]: tokens with a in layer l and b in layer l+1; rows and columns differ, so summing or
    # sorting over the wrong axis gives another number
    rng = np.random.default_rng(m)
    j = rng.integers(0, 20, (2, 5, 5)) * rng.integers(0, 2, (2, 5, 5))
    j[:, 0, :] += 30  # one hot source expert, spread over next experts
    given, indep = top_mass(j, m)
    for l in range(2):
        tot = j[l].sum()
        want_given = sum(
            j[l, a].sum() / tot * np.sort(j[l, a] / j[l, a].sum())[-m:].sum() for a in range(5) if j[l, a].sum() > 0
        )
        p_next = j[l].sum(axis=0) / tot  # marginal of the next layer's expert b
        assert np.isclose(given[l], want_given) and np.isclose(indep[l], np.sort(p_next)[-m:].sum())


def test_planted_affinity_is_found_and_the_shuffle_control_removes_it():
    # layer 1 is a fixed permutation of layer 0 (K=1): the next expert is fully predictable
    E = 8
    t0 = random_trace(5000, 1, 1, E, seed=1)
    topk = np.concatenate([t0, (t0 * 3 + 1) % E], axis=1).astype(np.uint8)
    row = affinity_rows(count_pairs(topk, E), shuffled_counts(topk, E, seed=0))[0]
    assert np.isclose(row["top1"], 1) and np.isclose(row["uncertainty_coef"], 1)
    assert row["uncertainty_coef_shuffled"] < 0.01 and row["top1_indep"] < 0.2
    # independent layers: about as much information as the shuffled control
    topk = random_trace(5000, 2, 2, E, seed=2)
    row = affinity_rows(count_pairs(topk, E), shuffled_counts(topk, E, seed=0))[0]
    assert row["uncertainty_coef"] < 0.01 and row["mi"] < 3 * row["mi_shuffled"] + 1e-3


def _hit_rates(topk, l):
    """By token: (chance the most likely next expert given a is among the token's K experts of layer
    l+1, the same for the most popular next expert), over every (token, a) of layer l."""
    T, _, K = topk.shape
    E = int(topk.max()) + 1
    nxt = [set(map(int, topk[t, l + 1])) for t in range(T)]
    best = {a: np.argmax([sum(b in nxt[t] for t in range(T) if a in topk[t, l]) for b in range(E)]) for a in range(E)}
    popular = np.argmax([sum(b in s for s in nxt) for b in range(E)])
    hits = [best[int(a)] in nxt[t] for t in range(T) for a in topk[t, l]]
    return float(np.mean(hits)), float(np.mean([popular in s for s in nxt]))


@pytest.mark.parametrize("K", [1, 2, 3])
def test_top1_is_the_hit_rate_of_the_best_guess_among_k_experts(K):
    # an independent count over tokens, not over the K x K pair table: K = 1 and K > 1 alike
    E, rng = 6, np.random.default_rng(K)
    t0 = random_trace(400, 1, K, E, seed=K)
    follow = np.where(rng.random((400, 1, K)) < 0.6, (t0 + 1) % E, rng.integers(0, E, (400, 1, K)))
    t1 = np.array([list(dict.fromkeys([*map(int, f[0]), *range(E)]))[:K] for f in follow])[:, None, :]
    topk = np.concatenate([t0, t1], axis=1).astype(np.uint8)
    row = affinity_rows(count_pairs(topk, E))[0]
    hit, hit_indep = _hit_rates(topk, 0)
    assert row["top1"] == pytest.approx(hit) and row["top1_indep"] == pytest.approx(hit_indep)
    assert 0 <= row["top1_indep"] <= row["top1"] <= 1


def test_shuffled_control_keeps_the_marginals():
    topk = random_trace(999, 3, 3, 9, seed=3)
    pc, sh = count_pairs(topk, 9), shuffled_counts(topk, 9, seed=4)
    assert np.array_equal(pc.across.sum(axis=2), sh.across.sum(axis=2))
    assert np.array_equal(pc.across.sum(axis=1), sh.across.sum(axis=1))
    assert not np.array_equal(pc.across, sh.across)


def test_one_layer_has_no_affinity():
    with pytest.raises(DodocoError, match="at least 2 MoE layers"):
        affinity_rows(count_pairs(random_trace(10, 1, 2, 4), 4))
