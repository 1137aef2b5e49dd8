"""Synthetic run directories for tests (no model needed)."""

import numpy as np

from dodoco.store import RunWriter


def make_run(path, condition, S=8, L=2, E=8, K=2, T=16, seed=0, hot=None):
    """A complete run: counts[S, L, E] with every token choosing K distinct experts (T tokens/seq)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((S, L, E), dtype=np.uint32)
    p = np.ones(E) / E if hot is None else np.array([hot if e == 0 else 1.0 for e in range(E)]) / (hot + E - 1)
    for s in range(S):
        for l in range(L):
            for _ in range(T):
                counts[s, l, rng.choice(E, size=K, replace=False, p=p)] += 1
    w = RunWriter(path, {"model": "synthetic", "condition": condition, "seq_len": T, "sequences": S})
    w.write_part(0, counts, np.full(S, T, dtype=np.int64))
    kind = "mock" if condition.startswith("mock") else "real"
    w.finalize({"model": {"id": "synthetic"}, "routing": {"E": E, "K": K, "L": L, "moe_layer_ids": list(range(L))},
                "condition": {"name": condition, "kind": kind, "provenance": "test"}, "seq_len": T,
                "sequences": S, "granularity": "sequence"})
    return counts
