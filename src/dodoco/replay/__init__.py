"""AlltoAll replay of measured routing on N ranks (torchrun; NCCL on GPUs, gloo for a CPU dry run).

Split sizes come from the run's traffic matrices (``dodoco.ep.traffic``); the harness times dispatch
and combine of H-wide rows, max over ranks per iteration, median and p10/p90 over iterations, beside
a mock condition, a balanced control of the same bytes and a raw all_to_all_single baseline.
docs/dispatch.md describes the method and the output.

``plan`` and ``config`` need no torch; ``harness`` and ``runner`` import torch.distributed.
"""

from dodoco.replay.config import ReplayConfig, build_cases, pick_runs
from dodoco.replay.plan import (ReplayCase, balanced_splits, case_bytes, run_cases,
                                skewed_splits, sweep_sizes, synth_topk)

__all__ = ["ReplayCase", "ReplayConfig", "balanced_splits", "build_cases", "case_bytes",
           "pick_runs", "run_cases", "skewed_splits", "sweep_sizes", "synth_topk"]
