"""The assignment solver against every permutation."""

import itertools

import numpy as np
import pytest

from dodoco.ep.assignment import linear_assignment
from dodoco.errors import DodocoError


@pytest.mark.parametrize("n,m,seed", [(1, 1, 0), (3, 3, 1), (5, 5, 2), (4, 6, 3), (6, 6, 4)])
def test_matches_brute_force(n, m, seed):
    c = np.random.default_rng(seed).integers(0, 20, (n, m)).astype(float)
    col = linear_assignment(c)
    assert len(set(col.tolist())) == n
    best = min(sum(c[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
    assert np.isclose(c[np.arange(n), col].sum(), best)


def test_by_hand_and_bad_input():
    # the greedy row-by-row choice (0->0 at cost 1, then 1->1 at 10) is not optimal (2 + 2)
    assert linear_assignment([[1, 2], [2, 10]]).tolist() == [1, 0]
    with pytest.raises(DodocoError, match="n <= m"):
        linear_assignment(np.zeros((3, 2)))
