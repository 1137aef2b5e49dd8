"""The per-run analyses the report draws beyond the verdicts: mitigations, measured vs NeuSim-predicted
skew, the decode regime, the trace summary and each run's load curves.

The report only renders what these return (``report/sections_ep.py``, ``sections_traces.py``,
``sections_load.py``); every number is computed here, on each run's step source
(``ep.steps.run_source``: a window aggregate is its one step) and token traces.

Mitigations are measured on a seeded subset of at most ``MITIGATION_SEQUENCES`` units per run (their
step-by-step greedy searches cost far more than a scan), at one EP degree chosen per run
(``mitigation_setup``); the decode regime uses at most ``DECODE_SEQUENCES`` sequences.

Shape legend: S sequences, T tokens, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco import defaults
from dodoco.ep.steps import StepSource, run_source, source_of
from dodoco.errors import DodocoError

__all__ = [
    "DECODE_SEQUENCES",
    "MITIGATION_SEQUENCES",
    "decode_curves",
    "decode_traces",
    "load_curves",
    "mitigation_rows",
    "mitigation_setup",
    "neusim_rows",
    "traces",
]

MITIGATION_SEQUENCES = 1024
DECODE_SEQUENCES = 2048


def _subset_idx(S: int, limit: int, seed: int) -> np.ndarray | None:
    """A seeded subset of at most ``limit`` of S units, sorted (None: every unit)."""
    return None if S <= limit else np.sort(np.random.default_rng(seed).permutation(S)[:limit])


def mitigation_setup(source: StepSource, E: int, B: int) -> tuple[int, int, int]:
    """(N, G, window) for the mitigations of a source: N the largest of 16, 8, 4, 2 (<= E) with at
    least 4 steps of N*B units, G = 8 GPUs per node at N = 16 else N / 2 (two nodes), and a relayout
    window of min(8, steps // 4) steps. DodocoError when not even N = 2 has 4 steps."""
    for N in (16, 8, 4, 2):
        steps = source.n_steps(N * B)
        if N <= E and steps >= 4:
            return N, (8 if N == 16 else N // 2), max(1, min(8, steps // 4))
    raise DodocoError(
        f"mitigations need 4 steps of 2 x {B} units ({8 * B} units), have {source.n_steps(2 * B)} step(s)"
    )


def mitigation_rows(run, B: int, kind: str, seed: int = 0) -> list[dict]:
    """Every mitigation of one run (``dodoco.ep.mitigations``) on a seeded subset of its units."""
    from dodoco.ep import mitigations as mit

    idx = _subset_idx(run.S, MITIGATION_SEQUENCES, seed + 2)
    source = run_source(run, seed) if idx is None else source_of(run.counts, seed, idx=idx)
    N, G, W = mitigation_setup(source, run.E, B)
    traces = dict(zip(("topk", "offsets"), run.tokens())) if run.has_tokens else {}
    rows = mit.adaptive_relayout(source, N, B, window=W)
    rows += mit.sequence_placement(source, N, B)
    rows += mit.hierarchical_dispatch(source, N, B, G, run.K, **traces)
    rows += mit.topology_mapping(source, N, B, G)
    lab = {
        "model": run.model,
        "condition": run.condition,
        "kind": kind,
        "seq_len": run.seq_len,
        "ep": N,
        "batch": B,
        "gpus_per_node": G,
        "units": source.n_units,
    }
    return [{**lab, **r} for r in rows]


def decode_traces(run, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The run's token traces (topk[T, L, K], offsets[S+1]) of at most DECODE_SEQUENCES sequences."""
    from dodoco.ep.placements import trace_subset

    topk, offsets = run.tokens()
    idx = _subset_idx(offsets.shape[0] - 1, DECODE_SEQUENCES, seed + 3)
    return (np.asarray(topk), np.asarray(offsets)) if idx is None else trace_subset(topk, offsets, idx)


def _decode_source(run, seed: int) -> StepSource:
    from dodoco.ep.decode import decode_positions, decode_source

    topk, offsets = decode_traces(run, seed)
    pos = decode_positions(np.diff(offsets), defaults.DECODE_POSITIONS)
    return decode_source(topk, offsets, run.E, pos, seed)


def neusim_rows(run, regime: str, B: int, options) -> list[dict]:
    """NeuSim's parameters and measured vs predicted receiver skew per EP degree (``simulate.neusim``)
    of one run and regime ("prefill": its step source; "decode": its token traces)."""
    from dodoco.simulate.neusim import neusim_table

    seed = options.seed
    source = run_source(run, seed) if regime == "prefill" else _decode_source(run, seed)
    return neusim_table(
        source,
        run.K,
        ep=list(options.ep or defaults.default_eps(run.E)),
        batch=(B,),
        regime=regime,
        model=run.model,
        condition=run.condition,
        seq_len=run.seq_len,
    ).to_pylist()


def decode_curves(run, B: int, placement: str, options) -> dict:
    """The decode regime's EP curves of one run ({(metric, placement): EPCurve}, ``findings.runs``)."""
    from dodoco.ep.decode import decode_scan
    from dodoco.findings.runs import result_curves

    topk, offsets = decode_traces(run, options.seed)
    result = decode_scan(
        topk,
        offsets,
        run.E,
        ep=list(options.ep or defaults.default_eps(run.E)),
        batch=[B],
        placement=placement,
        seed=options.seed,
        n_boot=options.n_boot,
        model=run.model,
        condition=run.condition,
        seq_len=run.seq_len,
    )
    return result_curves(result, B)


def traces(runs, seed: int = 0, n_boot: int = defaults.N_BOOT):
    """Co-activation, affinity, trace placements and rebalancing of the runs with token traces
    (``ep.trace_summary.trace_summary``)."""
    from dodoco.ep.trace_summary import TraceOptions, trace_summary

    return trace_summary(runs, TraceOptions(seed=seed, n_boot=n_boot))


def load_curves(aggregate) -> dict:
    """Load shape of a run's aggregate counts [L, E]: model-level Gini (mean over layers) and the
    Lorenz curve averaged over layers -> {"gini": float, "x": [E+1], "y": [E+1]}."""
    from dodoco.metrics.imbalance import gini, lorenz

    x, y = lorenz(aggregate)
    return {"gini": float(np.nanmean(gini(aggregate))), "x": x, "y": np.nanmean(y, axis=0)}
