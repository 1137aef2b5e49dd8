"""Expert parallelism from routing counts: placements, rank loads, traffic, the EP scan, decode
steps and mitigations.

Pure numpy functions on arrays (no torch, no model). Formulas: docs/ep.md.

Shape legend: S sequences, T tokens, L MoE layers, E routed experts, K experts per token, N EP
ranks, B sequences per rank per step, H hidden size.
"""

from dodoco.ep.decode import decode_scan, decode_source, decode_step_counts, trace_counts
from dodoco.ep.loads import RankMap, rank_loads, receiver_skew, replica_max_mean
from dodoco.ep.mitigations import (
    adaptive_relayout,
    fraction_removed,
    hierarchical_dispatch,
    mitigation_table,
    sequence_placement,
    topology_mapping,
)
from dodoco.ep.placement import (
    PLACEMENTS,
    Placement,
    contiguous,
    eplb,
    eplb_layers,
    fit_placement,
    round_robin,
    stack_layers,
)
from dodoco.ep.scan import (
    DEFAULT_EP,
    ep_scan,
    fit_eval_split,
    require_sequences,
    scan_plan,
    skipped_reasons,
)
from dodoco.ep.traffic import (
    copy_traffic_from_tokens,
    dedup_traffic,
    send_recv_bytes,
    source_counts,
    split_sizes,
    traffic_bytes,
    traffic_matrix,
)

__all__ = [
    "DEFAULT_EP",
    "PLACEMENTS",
    "Placement",
    "RankMap",
    "adaptive_relayout",
    "contiguous",
    "copy_traffic_from_tokens",
    "decode_scan",
    "decode_source",
    "decode_step_counts",
    "dedup_traffic",
    "ep_scan",
    "eplb",
    "eplb_layers",
    "fit_eval_split",
    "fit_placement",
    "fraction_removed",
    "hierarchical_dispatch",
    "mitigation_table",
    "rank_loads",
    "receiver_skew",
    "replica_max_mean",
    "require_sequences",
    "round_robin",
    "scan_plan",
    "send_recv_bytes",
    "sequence_placement",
    "skipped_reasons",
    "source_counts",
    "split_sizes",
    "stack_layers",
    "topology_mapping",
    "trace_counts",
    "traffic_bytes",
    "traffic_matrix",
]
