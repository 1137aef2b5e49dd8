"""Synthetic routing counts and run directories with known answers (tests, benchmarks, demos).

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dodoco.store.atomic import save_npy
from dodoco.store.writer import RunWriter

__all__ = ["mock_and_prose_runs", "skewed_counts", "synthetic_manifest", "write_counts_run"]


def skewed_counts(
    S: int, L: int, E: int, *, assignments: int = 1024, concentration: float = 0.5, jitter: float = 20.0, seed: int = 0
) -> np.ndarray:
    """uint32 [S, L, E]: per-layer expert popularity ~ Dirichlet(concentration), per-sequence
    Gamma(jitter) noise on it, ``assignments`` per sequence and layer (Poisson). Lower concentration
    = more skewed; ``concentration=None`` gives uniform popularity (a mock-like router)."""
    rng = np.random.default_rng(seed)
    if concentration is None:
        popularity = np.full((L, E), 1.0 / E, dtype=np.float32)
    else:
        popularity = rng.dirichlet(np.full(E, float(concentration)), size=L).astype(np.float32)
    out = np.empty((S, L, E), dtype=np.uint32)
    chunk = max(1, (1 << 22) // (L * E))
    for a in range(0, S, chunk):
        n = min(chunk, S - a)
        p = popularity[None] * rng.gamma(jitter, 1.0 / jitter, size=(n, L, E)).astype(np.float32)
        p /= p.sum(axis=-1, keepdims=True)
        out[a : a + n] = rng.poisson(assignments * p)
    return out


def write_counts_run(
    path,
    counts,
    *,
    model: str,
    condition: str,
    kind: str | None = None,
    seq_len: int = 0,
    K: int | None = 1,
    granularity: str = "sequence",
    overwrite: bool = True,
) -> Path:
    """Write counts[S, L, E] as a complete run directory (origin "synthetic") and return its path.

    kind: the condition's kind written to the manifest, "mock" or "real" (default "mock" for the
    three mock conditions' names, else "real"); analyses read it from the manifest, never from the
    name. seq_tokens are the busiest layer's assignments // K (the rule of imported counts, which the
    store checks); ``K=None`` leaves K unknown, as an import without --top-k does.
    """
    from dodoco.store import manifest as mf

    counts = np.asarray(counts, dtype=np.uint32)
    S, L, E = counts.shape
    path = Path(path)
    spec = {"model": model, "condition": condition, "seq_len": seq_len, "sequences": S, "synthetic": True}
    writer = RunWriter(path, spec, origin=mf.Origin.SYNTHETIC, overwrite=overwrite)
    save_npy(path / "counts.npy", counts)
    save_npy(path / "seq_tokens.npy", counts.sum(axis=-1, dtype=np.int64).max(axis=1) // max(1, K or 1))
    kind = kind or ("mock" if condition in ("mock-uniform", "mock-ramp", "mock-unigram") else "real")
    shape = dict(E=E, K=K, L=L, seq_len=seq_len, sequences=S, granularity=granularity)
    writer.write_manifest(synthetic_manifest(model, condition, kind, **shape))
    return path


def synthetic_manifest(
    model: str,
    condition: str,
    kind: str,
    *,
    E: int,
    K: int | None,
    L: int,
    seq_len: int,
    sequences: int,
    granularity: str = "sequence",
):
    """The manifest of a synthetic run (status running, for the writer to seal): ``kind`` "mock" or
    "real", the routing of E experts, top-K, L layers numbered 0..L-1."""
    from dodoco.store import manifest as mf

    return mf.Manifest(
        status=mf.Status.RUNNING,
        origin=mf.Origin.SYNTHETIC,
        identity={},
        model=mf.ModelInfo(id=model),
        routing=mf.Routing(E=E, K=K, L=L, layer_ids=tuple(range(L))),
        condition=mf.ConditionInfo(name=condition, kind=mf.ConditionKind(kind), provenance={"generator": "synthetic"}),
        seq_len=int(seq_len),
        sequences=sequences,
        granularity=mf.Granularity(granularity),
        details={"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )


def mock_and_prose_runs(root, K: int = 1) -> Path:
    """Two small runs of model "m" under ``root`` (32 sequences of 32 tokens, 2 layers, 16 experts):
    mock-uniform (multinomial) and prose (Dirichlet 0.3), as the command tests use them -> root."""
    root = Path(root)
    for condition, conc, seed in (("mock-uniform", None, 0), ("prose", 0.3, 1)):
        counts = skewed_counts(32, 2, 16, assignments=64, concentration=conc, seed=seed)
        write_counts_run(root / "m" / f"{condition}-L32", counts, model="m", condition=condition, seq_len=32, K=K)
    return root
