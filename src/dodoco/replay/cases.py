"""Replay cases of a run's routing: every step x MoE layer, with each source rank's top-k (no torch).

Steps come from ``dodoco.ep.steps`` (N*B sequences in the fixed seeded order; rank i holds
sequences [i*B, (i+1)*B) of a step) and placements from ``dodoco.ep.placements`` under its one
policy: when the placement is fitted on data (EPLB), it is fitted on the fit part of the real run
and the steps are formed from the held-out part only (``part: "held-out"``); otherwise every
sequence is replayed (``part: "all"``).

Top-k per rank: the run's token traces of those sequences when it has them, otherwise synthesised
from the rank's per-expert counts (``dodoco.replay.routing.rank_topk_from_counts``); then mapped to
physical experts through the placement.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks,
B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.replay.plan import ReplayCase
from dodoco.replay.routing import attach_topk, rank_topk_from_counts, to_physical, tokens_of

__all__ = ["replay_order", "run_placement", "run_routing_cases"]


def replay_order(run, names, seed: int):
    """(EvalPlan, unit order): the one policy's plan for the placements ``names`` on this run, and its
    evaluated units in the seeded order ``source_of(counts, seed, idx=eval_idx)`` takes them."""
    from dodoco.ep.placements import evaluation_plan
    from dodoco.ep.steps import step_order

    plan = evaluation_plan(names, run.S, seed)
    return plan, plan.eval_idx[step_order(len(plan.eval_idx), seed)]


def run_placement(run, name: str, N: int, seed: int):
    """The placement ``name`` for N ranks; a fitted one fitted on the fit part of ``run`` (the policy)."""
    from dodoco.ep.placements import PLACEMENTS, build_placement, fit_data

    plan, _ = replay_order(run, [name], seed)
    if not PLACEMENTS[name].fitted:
        return build_placement(name, run.E, N)
    tokens = run.tokens() if run.has_tokens else None
    return build_placement(name, run.E, N, fit_data(run.counts, plan.fit_idx, tokens))


def _layers(cfg, L: int) -> list[int]:
    layers = list(range(L)) if cfg.layers is None else [int(x) for x in cfg.layers]
    bad = [x for x in layers if not 0 <= x < L]
    if bad:
        raise DodocoError(f"--layers {bad} out of range: the run has L={L} MoE layers (0..{L - 1})")
    return layers


def _rank_topk(seqs_by_rank, src_l, layer: int, K: int, traces, what: str):
    """Logical top-k per rank of one step and layer: traces when given, else synthesised."""
    if traces is None:
        return rank_topk_from_counts(src_l, K, what), "synthesised from counts"
    topk, offsets = traces
    return [tokens_of(topk, offsets, s, layer) for s in seqs_by_rank], "traces"


def run_routing_cases(run, kind: str, cfg, N: int, placement_from=None) -> tuple[list[ReplayCase], dict]:
    """Cases of one run: every chosen step x layer -> (cases, provenance).

    placement_from: the run whose data fits a fitted placement (the real run, for a mock run);
    default ``run`` itself. Steps come from ``run``'s evaluated units (all, or the held-out part).
    """
    from dodoco.ep.steps import require_steps, source_of

    L, B, K = run.L, int(cfg.batch), run.K
    p = run_placement(placement_from or run, cfg.placement, N, cfg.seed)
    plan, order = replay_order(run, [cfg.placement], cfg.seed)
    require_steps(len(order), N, B, f"run {run.path}" + (" (its held-out part)" if plan.part == "held-out" else ""))
    n_steps = len(order) // (N * B) if cfg.max_steps is None else min(len(order) // (N * B), int(cfg.max_steps))
    order = order[: n_steps * N * B]
    ranks = source_of(run.counts, order=order).ranks(N, B)  # [n, N, L, E]
    traces = run.tokens() if run.has_tokens else None
    cases = []
    for k in range(n_steps):
        by_rank = order[k * N * B:(k + 1) * N * B].reshape(N, B)  # rank i holds units by_rank[i]
        src = ranks[k].astype(np.int64)
        for layer in _layers(cfg, L):
            what = f"run {run.path} step {k} layer {layer}"
            logical, source = _rank_topk(by_rank, src[:, layer], layer, K, traces, what)
            phys, slots = to_physical(logical, p.layer(layer))
            case = ReplayCase(run.condition, kind, k, layer, np.zeros((N, N), dtype=np.int64), src=src[:, layer],
                              model=run.model)
            cases.append(attach_topk(case, phys, slots, source))
    prov = {"real" if kind == "real" else kind: {"path": str(run.path), "condition": run.condition,
                                                  "model": run.model, "S": run.S, "L": L, "E": run.E, "K": K,
                                                  "seq_len": run.seq_len, "traces": traces is not None},
            "placement": p.name, "part": plan.part}
    return cases, prov
