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

import dataclasses

from dodoco.replay.plan import ReplayCase, run_cases
from dodoco.replay.routing import attach_topk, rank_topk_from_counts, to_physical, tokens_of

__all__ = ["run_placement", "run_routing_cases"]


def run_placement(run, name: str, N: int, seed: int):
    """The placement ``name`` for N ranks; a fitted one fitted on the fit part of ``run`` (the policy)."""
    from dodoco.ep.placements import evaluation_plan, plan_placement

    plan = evaluation_plan([name], run.S, seed)
    return plan_placement(name, N, run.counts, plan, run.tokens() if run.has_tokens else None)


def _rank_topk(held, src_l, layer: int, K: int, traces, what: str):
    """Logical top-k per rank of one step and layer: the traces of the units each rank holds (held[N, B])
    when given, else synthesised from the rank's counts src_l[N, E]."""
    if traces is None:
        return rank_topk_from_counts(src_l, K, what), "synthesised from counts"
    topk, offsets = traces
    return [tokens_of(topk, offsets, units, layer) for units in held], "traces"


def run_routing_cases(run, kind: str, cfg, N: int, placement_from=None) -> tuple[list[ReplayCase], dict]:
    """Cases of one run: every chosen step x layer -> (cases, provenance).

    placement_from: the run whose data fits a fitted placement (the real run, for a mock run);
    default ``run`` itself. Steps come from ``run``'s evaluated units (``evaluated_source``: all of
    them, a window aggregate's one step among them, or the held-out part).
    """
    from dodoco.ep.placements import evaluated_source
    from dodoco.ep.steps import run_source

    B, K = int(cfg.batch), run.K
    p = run_placement(placement_from or run, cfg.placement, N, cfg.seed)
    plan, source = evaluated_source([cfg.placement], run.counts, cfg.seed, source=run_source(run, cfg.seed))
    what = f"run {run.path}" + (" (its held-out part)" if plan.part == "held-out" else "")
    base = run_cases(
        source,
        N,
        B,
        condition=run.condition,
        kind=kind,
        placement=p,
        layers=cfg.layers,
        max_steps=cfg.max_steps,
        what=what,
    )
    traces = run.tokens() if run.has_tokens else None
    held = source.holders(N, B) if traces is not None else None  # [n, N, B] unit ids
    cases = []
    for c in base:
        logical, topk_source = _rank_topk(
            None if held is None else held[c.step],
            c.src,
            c.layer,
            K,
            traces,
            f"run {run.path} step {c.step} layer {c.layer}",
        )
        phys, slots = to_physical(logical, p.layer(c.layer))
        cases.append(attach_topk(dataclasses.replace(c, model=run.model), phys, slots, topk_source))
    prov = {
        "real" if kind == "real" else kind: {
            "path": str(run.path),
            "condition": run.condition,
            "model": run.model,
            "S": run.S,
            "L": run.L,
            "E": run.E,
            "K": K,
            "seq_len": run.seq_len,
            "traces": traces is not None,
        },
        "placement": p.name,
        "part": plan.part,
        "source_split": source.source_split,
    }
    return cases, prov
