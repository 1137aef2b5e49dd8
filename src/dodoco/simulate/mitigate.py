"""Mitigations judged in milliseconds of MoE-layer time as well as in skew (``dodoco simulate --mitigations``).

For one run, EP degree N and batch B, each mitigation is the same whole-layer simulation
(``simulate.layer.simulate_ep``: dispatch + the busiest rank's expert compute + combine) under a
different setting, beside the unmitigated layout (contiguous):

- ``eplb``: EPLB placement with its default redundant experts, fitted on one half of the sequences
  and evaluated, like every row here then, on the other half;
- ``replication``: EPLB with one redundant expert per rank (N replicas of the hottest experts);
- ``capacity``: Megatron's expert capacity factor 1.0, 1.25, 1.5 (token dropping): each source rank
  sends an expert at most ceil(factor * its assignments / E) tokens; the rest are dropped, which
  changes the model's output (``dropped_share`` says how much).

Each row: layer_ms, dispatch_ms, compute_ms, recv_skew, the milliseconds saved against the
unmitigated layout evaluated on the same sequences, and the share of tokens dropped.

Shape legend: S sequences, L MoE layers, E routed experts, N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

__all__ = ["CAPACITY_FACTORS", "mitigation_rows"]

CAPACITY_FACTORS = (1.0, 1.25, 1.5)
KEEP = (
    "N",
    "recv_skew",
    "dispatch_ms",
    "compute_ms",
    "combine_ms",
    "layer_ms",
    "compute_straggler_ms",
    "dropped_share",
)


def _settings(N: int):
    """(mitigation, placement, options, capacity factor, evaluated on the held-out half by hand)."""
    yield "none", "contiguous", {}, None, True
    yield "eplb", "eplb", {}, None, False  # a fitted placement evaluates on the held-out half itself
    yield "replication", "eplb", {"num_redundant": N}, None, False
    for f in CAPACITY_FACTORS:
        yield f"capacity {f:g}", "contiguous", {}, f, True


def mitigation_rows(
    counts,
    N: int,
    B: int,
    timer,
    *,
    row_bytes: int,
    compute,
    dispatcher: str = "nccl",
    seed: int = 0,
    max_steps: int | None = 8,
) -> list[dict]:
    """Rows of every mitigation at EP N: counts[S, L, E] -> [{mitigation, placement, ..., saved_ms}]."""
    from dodoco.ep.placements import evaluation_plan
    from dodoco.simulate.layer import simulate_ep

    held = evaluation_plan(["eplb"], counts.shape[0], seed).eval_idx  # where fitted placements are evaluated
    rows = []
    common = dict(row_bytes=row_bytes, dispatchers=(dispatcher,), compute=compute, seed=seed, max_steps=max_steps)
    for name, placement, options, cf, by_hand in _settings(N):
        data = counts[held] if by_hand else counts
        setting = dict(placement=placement, capacity_factor=cf, placement_options=options)
        out, skipped = simulate_ep(data, [N], B, timer, **common, **setting)
        if skipped or not out:
            rows.append({"mitigation": name, "placement": placement, "skipped": skipped[0][1] if skipped else "none"})
            continue
        r = out[0]
        rows.append(
            {
                "mitigation": name,
                "placement": placement,
                **{k: r.get(k, 0.0) for k in KEEP},
                "evaluated_on": "held-out half",
            }
        )
    base = next((r for r in rows if r["mitigation"] == "none" and "layer_ms" in r), None)
    for r in rows:
        if base is not None and "layer_ms" in r:
            r["saved_ms"] = base["layer_ms"] - r["layer_ms"]
            r["saved_share"] = r["saved_ms"] / base["layer_ms"]
    return rows
