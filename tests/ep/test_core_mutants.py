"""Core ep functions against independent computations, where the module tests leave room for wrong code
(found by bench/bench_mutation.py): each test names what it pins."""

import numpy as np
import pytest

from dodoco.ep.steps import uniform_split
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
