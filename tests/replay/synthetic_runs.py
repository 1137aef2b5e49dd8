"""Synthetic run directories for tests (no model needed)."""

import numpy as np

from dodoco.findings.synthetic import write_counts_run


def make_run(path, condition, S=8, L=2, E=8, K=2, T=16, seed=0, hot=None):
    """A complete run: counts[S, L, E] with every token choosing K distinct experts (T tokens/seq)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((S, L, E), dtype=np.uint32)
    p = np.ones(E) / E if hot is None else np.array([hot if e == 0 else 1.0 for e in range(E)]) / (hot + E - 1)
    for s in range(S):
        for l in range(L):
            for _ in range(T):
                counts[s, l, rng.choice(E, size=K, replace=False, p=p)] += 1
    kind = "mock" if condition.startswith("mock") else "real"
    write_counts_run(path, counts, model="synthetic", condition=condition, kind=kind, seq_len=T, K=K)
    return counts
