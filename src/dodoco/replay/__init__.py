"""Dispatch replay: a run's measured routing through real MoE dispatchers on N ranks (torchrun).

One harness (``runner``, ``harness``), each dispatcher fills one interface (``dispatchers``): raw
NCCL all_to_all_single (the floor), Megatron-Core's token dispatchers, PyTorch's NVSHMEM
all-to-all, DeepEP. Every dispatcher runs the same cases (real, mock, balanced, skew controls, the
calibration grid), checked against the routing once per case and timed side by side; the result is
``dodoco.replay/2`` (docs/replay.md).

``plan``, ``routing``, ``cases`` and ``config`` need no torch; ``harness``, ``runner`` and the
dispatcher classes import torch.distributed.
"""

from dodoco.replay.config import ReplayConfig, build_cases, grid_cases, pick_runs, skew_case
from dodoco.replay.dispatchers import DISPATCHERS, expand_names
from dodoco.replay.plan import (
    ReplayCase,
    balanced_splits,
    case_bytes,
    floor_ms,
    hot_pair_splits,
    run_cases,
    skewed_splits,
    sweep_sizes,
    synth_topk,
)

__all__ = [
    "DISPATCHERS",
    "ReplayCase",
    "ReplayConfig",
    "balanced_splits",
    "build_cases",
    "case_bytes",
    "expand_names",
    "floor_ms",
    "grid_cases",
    "hot_pair_splits",
    "pick_runs",
    "run_cases",
    "skew_case",
    "skewed_splits",
    "sweep_sizes",
    "synth_topk",
]
