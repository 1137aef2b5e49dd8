"""Routing for other simulators: per-step traffic matrices, and LLMServingSim's measured gate curve.

**Traffic matrices** (``traffic_entry``; schema ``dodoco.traffic/1``, docs/dispatch.md): for one run
at EP = N and B sequences per rank per step, every (step, MoE layer) AlltoAll of the dispatch as
bytes[src][dst]: rank src holds sequences [src*B, (src+1)*B) of the step (seeded order) and sends
one H-wide row per (token, expert) assignment to the rank holding the expert (per-expert copies,
as Megatron's alltoall dispatcher sends; the diagonal stays on the rank). Combine is the transpose.
A fitted placement (eplb) is fitted on one part of the sequences and the steps come from the other
(``part``). CSV (``traffic_csv``): one line per (run, step, layer, src, dst) with the bytes.

**LLMServingSim** (casys-kaist/LLMServingSim) documents one input for measured routing: the
``gate_stats.json`` its CUSTOM expert-routing policy reads (``--expert-routing-policy CUSTOM
--gate-stats FILE``; docs/simulator/moe-expert-routing.md, written by bench/core/gate_stats.py):
``{"schema_version": 1, "model", "num_experts", "num_experts_per_tok", "n_calls",
"n_dropped_uniform_token", "n_unparsed", "curve": [[tokens, mean distinct experts, calls], ...]}``,
the distinct experts one gate call of ``tokens`` tokens activates, which the simulator
interpolates linearly between batch sizes and clamps at the ends. ``gate_stats`` computes it
exactly from counts: a gate call is one MoE layer over the tokens of P sequences (prefill,
P = 1, 2, 4, ...) or one token of each of P sequences (decode, from token traces); distinct
experts = experts with a non-zero count, averaged over steps and layers. LLMServingSim has no
documented input for per-rank traffic matrices, so none is invented here.

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks, B
sequences per rank per step, H hidden size.
"""

from __future__ import annotations

import io

import numpy as np

from dodoco import defaults

__all__ = ["CSV_HEADER", "TRAFFIC_SCHEMA", "gate_stats", "traffic_csv", "traffic_entry"]

TRAFFIC_SCHEMA = "dodoco.traffic/1"


def traffic_entry(
    run,
    N: int,
    B: int,
    *,
    row_bytes: int,
    placement: str = defaults.PLACEMENT,
    seed: int = 0,
    max_steps: int | None = None,
) -> dict:
    """Every (step, layer) dispatch of one run at EP = N: {"step", "layer", "bytes": [N][N]} plus labels."""
    from dodoco.ep.placements import evaluated_source, plan_placement
    from dodoco.ep.steps import run_source
    from dodoco.replay.plan import run_cases

    plan, source = evaluated_source([placement], run.counts, seed, source=run_source(run, seed))
    what = f"run {run.path}" + (" (its held-out part)" if plan.part == "held-out" else "")
    source.check(N, B, what)
    p = plan_placement(placement, N, run.counts, plan)
    cases = run_cases(source, N, B, condition=run.condition, kind="real", placement=p, max_steps=max_steps)
    return {
        "model": run.model,
        "condition": run.condition,
        "run": str(run.path),
        "ranks": int(N),
        "batch": int(B),
        "bytes_per_row": int(row_bytes),
        "placement": placement,
        "part": plan.part,
        "seed": seed,
        "source_split": source.source_split,
        "matrices": [{"step": c.step, "layer": c.layer, "bytes": (c.splits * int(row_bytes)).tolist()} for c in cases],
    }


CSV_HEADER = "model,condition,ranks,placement,step,layer,src,dst,bytes"


def traffic_csv(entries: list[dict]) -> str:
    """CSV text: model,condition,ranks,placement,step,layer,src,dst,bytes (every pair, diagonal too)."""
    out = io.StringIO()
    out.write(CSV_HEADER + "\n")
    for e in entries:
        head = f"{e['model']},{e['condition']},{e['ranks']},{e['placement']}"
        for m in e["matrices"]:
            for i, row in enumerate(m["bytes"]):
                for j, v in enumerate(row):
                    out.write(f"{head},{m['step']},{m['layer']},{i},{j},{int(v)}\n")
    return out.getvalue()


def _curve_points(steps_of, sizes, tokens_of) -> list[list]:
    """[[tokens, mean distinct experts, calls]] for each step size P in sizes."""
    pts = []
    for P in sizes:
        steps = steps_of(P)  # [n, L, E]
        if steps.shape[0] == 0:
            continue
        distinct = (steps > 0).sum(axis=-1)  # [n, L]
        pts.append([int(round(tokens_of(P, steps))), float(distinct.mean()), int(distinct.size)])
    return pts


def _powers(S: int) -> list[int]:
    out, P = [], 1
    while P <= S:
        out.append(P)
        P *= 2
    return out


def gate_stats(run, seed: int = 0) -> dict:
    """LLMServingSim's gate_stats.json (schema_version 1) for one run: the mean distinct experts per
    gate call against the call's tokens, prefill steps of P = 1, 2, 4, ... sequences and, with
    token traces, decode steps of one token per sequence. A gate call is P units, so the curve needs
    per-unit data (a window aggregate has none)."""
    from dodoco.ep.steps import run_source

    K = run.K
    src = run_source(run, seed)
    src.require_units("LLMServingSim's gate curve (the distinct experts of one gate call)")
    pts = _curve_points(src.steps, _powers(src.n_units), lambda P, st: st.sum(-1).mean() / K)
    if run.has_tokens:
        from dodoco.ep.decode import decode_positions, decode_source

        topk, offsets = run.tokens()
        dec = decode_source(topk, offsets, run.E, decode_positions(np.diff(offsets), defaults.DECODE_POSITIONS), seed)
        pts += _curve_points(dec.steps, _powers(dec.n_units), lambda P, st: P)
    merged = {}
    for t, d, n in pts:  # one point per token count: calls-weighted mean
        a = merged.setdefault(t, [0.0, 0])
        a[0] += d * n
        a[1] += n
    curve = [[t, a[0] / a[1], a[1]] for t, a in sorted(merged.items())]
    return {
        "schema_version": 1,
        "model": run.model,
        "num_experts": int(run.E),
        "num_experts_per_tok": int(K),
        "n_calls": int(sum(c[2] for c in curve)),
        "n_dropped_uniform_token": 0,
        "n_unparsed": 0,
        "curve": curve,
        "dodoco": {
            "run": str(run.path),
            "condition": run.condition,
            "seq_len": run.seq_len,
            "what": "distinct experts per gate call computed from DODOCO counts (prefill steps of "
            "P sequences) and token traces (decode steps), mean over steps and MoE layers",
        },
    }
