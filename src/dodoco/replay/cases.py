"""Replay cases of a run's routing: every step x MoE layer, with each source rank's top-k (no torch).

A step is N*B sequences in the fixed seeded order; rank i holds sequences [i*B, (i+1)*B) of it.
When the placement is fitted on data (EPLB), it is fitted on one half of the real run's sequences
(``fit_half``) and the steps are formed from the other half only: the result says
``part: "held-out"``; otherwise every sequence is replayed (``part: "all"``).

Top-k per rank: the run's token traces of those sequences when it has them, otherwise synthesised
from the rank's per-expert counts (``dodoco.replay.routing.rank_topk_from_counts``); then mapped to
physical experts through the placement.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.replay.plan import ReplayCase, check_sequences
from dodoco.replay.routing import attach_topk, rank_topk_from_counts, to_physical, tokens_of

__all__ = ["fit_half", "run_placement", "run_routing_cases"]


def fit_half(S: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit sequences, held-out sequences): the seeded order of S sequences cut in two halves."""
    from dodoco.metrics.steps import step_order

    order = step_order(S, seed)
    return order[: S // 2], order[S // 2:]


def run_placement(run, name: str, N: int, seed: int):
    """(placement, sequences replayed in step order, part): fitted placements fitted on one half."""
    from dodoco.ep.placement import FITTED, fit_placement
    from dodoco.metrics.steps import step_order

    counts = run.counts
    S, _, E = counts.shape
    if name not in FITTED:
        return fit_placement(name, E, N), step_order(S, seed), "all"
    fit, held = fit_half(S, seed)
    load = np.asarray(counts[np.sort(fit)]).sum(axis=0, dtype=np.int64)  # [L, E]
    return fit_placement(name, E, N, fit_load=load), held, "held-out"


def _layers(cfg, L: int) -> list[int]:
    layers = list(range(L)) if cfg.layers is None else [int(x) for x in cfg.layers]
    bad = [x for x in layers if not 0 <= x < L]
    if bad:
        raise DodocoError(f"--layers {bad} out of range: the run has L={L} MoE layers (0..{L - 1})")
    return layers


def _rank_topk(run, seqs_by_rank, src_l, layer: int, K: int, traces, what: str):
    """Logical top-k per rank of one step and layer: traces when given, else synthesised."""
    if traces is None:
        return rank_topk_from_counts(src_l, K, what), "synthesised from counts"
    topk, offsets = traces
    return [tokens_of(topk, offsets, s, layer) for s in seqs_by_rank], "traces"


def run_routing_cases(run, kind: str, cfg, N: int, placement_from=None) -> tuple[list[ReplayCase], dict]:
    """Cases of one run: every chosen step x layer -> (cases, provenance).

    placement_from: the run whose data fits a fitted placement (the real run, for a mock run);
    default ``run`` itself.
    """
    counts = run.counts
    S, L, E = counts.shape
    B, K = int(cfg.batch), run.K
    p, seqs, part = run_placement(placement_from or run, cfg.placement, N, cfg.seed)
    if placement_from is not None and part == "held-out":
        seqs = run_placement(run, cfg.placement, N, cfg.seed)[1]
    check_sequences(len(seqs), N, B, f"run {run.path}" + (" (its held-out half)" if part == "held-out" else ""))
    n_steps = len(seqs) // (N * B)
    if cfg.max_steps is not None:
        n_steps = min(n_steps, int(cfg.max_steps))
    traces = run.tokens() if run.has_tokens else None
    cases = []
    for k in range(n_steps):
        step = seqs[k * N * B:(k + 1) * N * B]
        by_rank = [step[i * B:(i + 1) * B] for i in range(N)]
        src = np.stack([np.asarray(counts[np.sort(s)]).sum(axis=0, dtype=np.int64) for s in by_rank])  # [N, L, E]
        for layer in _layers(cfg, L):
            what = f"run {run.path} step {k} layer {layer}"
            logical, source = _rank_topk(run, by_rank, src[:, layer], layer, K, traces, what)
            phys, slots = to_physical(logical, p.layer(layer))
            case = ReplayCase(run.condition, kind, k, layer, np.zeros((N, N), dtype=np.int64), src=src[:, layer],
                              model=run.model)
            cases.append(attach_topk(case, phys, slots, source))
    prov = {"real" if kind == "real" else kind: {"path": str(run.path), "condition": run.condition,
                                                  "model": run.model, "S": int(S), "L": int(L), "E": int(E),
                                                  "K": K, "seq_len": run.seq_len, "traces": traces is not None},
            "placement": p.name, "part": part}
    return cases, prov
