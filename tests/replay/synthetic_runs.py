"""Synthetic run directories for tests (no model needed)."""

import numpy as np

from dodoco.findings.synthetic import write_counts_run


def make_run(path, condition, S=8, L=2, E=8, K=2, T=16, seed=0, hot=None, traces=False):
    """A complete run: every token chooses K distinct experts (T tokens/seq); counts[S, L, E] are
    their bincounts, and with ``traces`` the top-k itself is stored (tokens.npy, token_offsets.npy)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((S, L, E), dtype=np.uint32)
    topk = np.zeros((S * T, L, K), dtype=np.uint8)
    p = np.ones(E) / E if hot is None else np.array([hot if e == 0 else 1.0 for e in range(E)]) / (hot + E - 1)
    for s in range(S):
        for l in range(L):
            for t in range(T):
                chosen = rng.choice(E, size=K, replace=False, p=p)
                counts[s, l, chosen] += 1
                topk[s * T + t, l] = chosen
    kind = "mock" if condition.startswith("mock") else "real"
    write_counts_run(path, counts, model="synthetic", condition=condition, kind=kind, seq_len=T, K=K)
    if traces:
        from dodoco.store import open_run
        from dodoco.store.atomic import save_npy
        from dodoco.store.manifest import Origin
        from dodoco.store.writer import RunWriter

        manifest = open_run(path).manifest
        spec = {"model": "synthetic", "condition": condition, "seq_len": T, "sequences": S, "synthetic": True}
        writer = RunWriter(path, spec, origin=Origin.SYNTHETIC)  # claim first: files there before are not adopted
        save_npy(path / "tokens.npy", topk)
        save_npy(path / "token_offsets.npy", np.arange(S + 1, dtype=np.int64) * T)
        writer.write_manifest(manifest)
    return counts
