"""Expert parallelism from routing counts: steps, placements, rank loads, traffic, the EP scan,
decode steps and mitigations.

Pure numpy functions on arrays (no torch, no model). Formulas: docs/ep.md.

Shape legend: S sequences, T tokens, L MoE layers, E routed experts, K experts per token, N EP
ranks, B sequences per rank per step, H hidden size.
"""

from dodoco.ep.decode import decode_scan, decode_source, decode_step_counts, trace_counts
from dodoco.ep.layout import Placement, contiguous, eplb, eplb_layers, round_robin, stack_layers
from dodoco.ep.loads import RankMap, rank_loads, receiver_skew, replica_max_mean
from dodoco.ep.mitigations import (
    adaptive_relayout,
    fraction_removed,
    hierarchical_dispatch,
    mitigation_table,
    sequence_placement,
    topology_mapping,
)
from dodoco.ep.placements import (
    PLACEMENTS,
    EvalPlan,
    FitData,
    PlacementSpec,
    build_placement,
    default_redundant,
    evaluation_plan,
    fit_eval_split,
)
from dodoco.ep.result import ScanResult, skipped_reasons
from dodoco.ep.scan import ep_scan
from dodoco.ep.steps import StepSource, feasible_pairs, require_steps, run_source, source_of, step_order, window_source
from dodoco.ep.traffic import (
    copy_traffic_from_tokens,
    dedup_traffic,
    send_recv,
    send_recv_bytes,
    send_recv_local,
    split_sizes,
    traffic_bytes,
    traffic_matrix,
)

__all__ = [
    "PLACEMENTS",
    "EvalPlan",
    "FitData",
    "Placement",
    "PlacementSpec",
    "RankMap",
    "ScanResult",
    "StepSource",
    "adaptive_relayout",
    "build_placement",
    "contiguous",
    "copy_traffic_from_tokens",
    "decode_scan",
    "decode_source",
    "decode_step_counts",
    "dedup_traffic",
    "default_redundant",
    "ep_scan",
    "eplb",
    "eplb_layers",
    "evaluation_plan",
    "feasible_pairs",
    "fit_eval_split",
    "fraction_removed",
    "hierarchical_dispatch",
    "mitigation_table",
    "rank_loads",
    "receiver_skew",
    "replica_max_mean",
    "require_steps",
    "round_robin",
    "send_recv",
    "send_recv_bytes",
    "send_recv_local",
    "sequence_placement",
    "skipped_reasons",
    "source_of",
    "split_sizes",
    "stack_layers",
    "step_order",
    "topology_mapping",
    "trace_counts",
    "traffic_bytes",
    "traffic_matrix",
    "run_source",
    "window_source",
]
