"""The whole-layer replay (``dodoco replay --layer``): dispatch, each rank's experts on its received tokens, combine.

A mode of the one replay path: the same cases, dispatchers, check and timing harness. Inside each
dispatcher's own ``step``, at the mark that ends its dispatch (``mark(n_dispatch)``), the rank runs
its local experts on the rows it just received (``Dispatcher.layer_rows``), then the dispatcher's
combine sends the rows back:

- rows delivered source-major (``nccl``, ``nvshmem-1d``) are first gathered by local expert (stage
  "sort by local expert", an ``index_select`` with the permutation the routing implies), and the
  experts' output is written back in delivery order (stage "unsort", ``index_copy_``) where the
  combine reads it, as a framework around a raw all-to-all does;
- rows delivered expert-major (``megatron``, ``megatron-allgather``: Megatron's own sort is part of
  its dispatch; ``nvshmem``: each expert's block aligned to 8 rows, padding included in the groups,
  as torchtitan runs it) go to the experts as they are; the combine sends the received rows (the
  same bytes as the experts' output, which is discarded).

Experts (``--kernel``): ``grouped_mm`` is ``dodoco.compute.kernels.ExpertBench.grouped_mm`` (one
``torch._grouped_mm`` per GEMM over the rank's uneven groups, weights rotated past L2), the kernel of
the expert-compute model; ``megatron`` is Megatron-Core's ``SequentialMLP`` (``replay.megatron_layer``).
Every rank's stage times are gathered (``time_collective(per_rank=True)``), so the layer time of an
iteration is its slowest rank's total (``replay.layer_results``). Before timing, each rank checks
that the rows its experts read are exactly its experts' tokens, group by group (``layer_check``).

Shape legend: N ranks, G local experts of this rank, H hidden size, I expert width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dodoco.errors import DodocoError
from dodoco.replay.dispatchers.base import decode_rows, local_assignments

__all__ = [
    "LayerPlan",
    "layer_check",
    "layer_plan",
    "layer_shape",
    "layer_stages",
    "layer_step",
    "rank_loads",
    "shape_of",
]

_TOK_BITS = 20


@dataclass
class LayerPlan:
    """One rank's experts for one case and dispatcher: ``loads`` int64 [G] tokens per local expert, ``groups``
    int64 [G] rows per group as the kernel sees them (loads, padded to the delivery's alignment), ``perm``
    (source-major delivery: the received row of each expert-major row, on the device), ``offs`` int32 [G]
    cumulative group ends (device), ``sizes`` int64 [G] (host: Megatron's tokens_per_expert), ``valid`` the
    expert-major rows that hold tokens (not padding) and ``want`` their codes (source << 20 | token)."""

    loads: np.ndarray
    groups: np.ndarray
    perm: torch.Tensor | None
    offs: torch.Tensor
    sizes: torch.Tensor
    valid: np.ndarray
    want: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.groups.sum())


def rank_loads(case, rank: int) -> np.ndarray:
    """Tokens per physical expert of ``rank`` in one case (all sources) -> int64 [G]: the expert loads
    the routing gives that rank (``compute.cases.local_loads`` computes the same from counts)."""
    slots = np.asarray(case.slots, dtype=np.int64)
    _, exp, _ = local_assignments(case.topk, slots, rank)
    return np.bincount(exp - int(slots[:rank].sum()), minlength=int(slots[rank])).astype(np.int64)


def _groups(loads: np.ndarray, align: int) -> np.ndarray:
    """Rows of each expert's block when each block starts at a multiple of ``align`` (the last one unpadded)."""
    if align <= 1 or loads.size == 0:
        return loads.copy()
    out = -(-loads // align) * align
    out[-1] = loads[-1]
    return out


def layer_plan(d, data) -> LayerPlan:
    """The LayerPlan of dispatcher d (its class) on this rank's RankData."""
    src, exp, tok = local_assignments(data.case.topk, data.slots, data.rank)
    loads = rank_loads(data.case, data.rank)
    em = np.lexsort((tok, src, exp))  # expert-major: by (expert, source, token)
    want = ((src << _TOK_BITS) + tok)[em]
    perm = None
    if d.order == "rank-major":
        rm = np.lexsort((tok, exp, src))  # the delivery: by (source, expert, token)
        pos = np.empty(src.shape[0], dtype=np.int64)
        pos[rm] = np.arange(src.shape[0])
        perm = torch.as_tensor(pos[em], device=data.device)
        groups = loads.copy()
    else:
        groups = _groups(loads, int(d.expert_align))
    starts = np.concatenate([[0], np.cumsum(groups)[:-1]]).astype(np.int64)
    valid = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, loads)]) if loads.size else np.zeros(0, int)
    return LayerPlan(
        loads,
        groups,
        perm,
        torch.as_tensor(np.cumsum(groups), dtype=torch.int32, device=data.device),
        torch.as_tensor(groups, dtype=torch.int64),
        valid.astype(np.int64),
        want,
    )


def layer_stages(d) -> tuple[str, ...]:
    """The stages of dispatcher d in the whole-layer replay: its dispatch, (sort), experts, (unsort), its combine."""
    mid = ("sort by local expert", "experts", "unsort") if d.order == "rank-major" else ("experts",)
    return tuple(d.stages[: d.n_dispatch]) + mid + tuple(d.stages[d.n_dispatch :])


def _expert_input(rows: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    return rows.index_select(0, plan.perm) if plan.perm is not None else rows[: plan.rows]


def layer_step(d, state, plan: LayerPlan, experts):
    """``step(k, mark)`` of the whole layer: d's own step with the experts run at its dispatch's end."""
    nd, sort = d.n_dispatch, plan.perm is not None
    extra = 3 if sort else 1

    def step(k: int, mark) -> None:
        def inner(i: int) -> None:
            if i != nd:
                mark(i if i < nd else i + extra)
                return
            mark(i)
            rows = d.layer_rows(state, k)
            x = _expert_input(rows, plan)
            if sort:
                mark(i + 1)
            y = experts(x, plan, k)
            mark(i + 1 + sort)
            if sort:
                rows.index_copy_(0, plan.perm, y)
                mark(i + 3)

        d.step(state, k, inner)

    return step


def layer_check(d, state, plan: LayerPlan, data) -> str:
    """'ok' when the rows the experts read after the last dispatch are this rank's experts' tokens, group
    by group, in order; else the first difference (one line)."""
    if not data.coded:
        return "skipped (rows too narrow or too many tokens to code)"
    x = _expert_input(d.layer_rows(state, state["last"]), plan)
    if x.shape[0] < plan.rows:
        return f"experts' input: {x.shape[0]} rows, the groups need {plan.rows}"
    got = decode_rows(x[torch.as_tensor(plan.valid, device=x.device)]).cpu().numpy()
    bad = np.flatnonzero(got != plan.want)
    if bad.size:
        g = int(np.searchsorted(np.cumsum(plan.loads), bad[0], side="right"))
        return (
            f"experts' input: {bad.size} rows not their expert's; first in local expert {g}: (source "
            f"{got[bad[0]] >> _TOK_BITS}, token {got[bad[0]] & ((1 << _TOK_BITS) - 1)}) instead of (source "
            f"{plan.want[bad[0]] >> _TOK_BITS}, token {plan.want[bad[0]] & ((1 << _TOK_BITS) - 1)})"
        )
    return "ok"


def layer_shape(cfg, run=None):
    """(ExpertShape, label) of the experts the layer replay runs: --shape NAME, --expert-width I with
    --hidden H, or the run's own (``compute.shapes.shape_of_run``); its H must be the row width --hidden."""
    from dodoco.compute.features import ExpertShape
    from dodoco.compute.shapes import resolve_shape, shape_of_run

    if cfg.expert_shape:
        shape, label = resolve_shape(cfg.expert_shape)
    elif cfg.expert_width:
        shape, label = (
            ExpertShape(int(cfg.hidden), int(cfg.expert_width)),
            f"H={cfg.hidden} I={cfg.expert_width} (given)",
        )
    elif run is not None:
        shape, label = shape_of_run(run)
        if shape is None:
            raise DodocoError(f"{label} (for --layer)")
    else:
        raise DodocoError("--layer needs the experts' shape: --shape NAME (e.g. deepseek-v3) or --expert-width I")
    if shape.hidden != int(cfg.hidden):
        raise DodocoError(
            f"--layer: the experts ({label}) have H={shape.hidden} but the rows are --hidden "
            f"{cfg.hidden}: give --hidden {shape.hidden}, or another shape"
        )
    return shape, label


_SHAPES: dict = {}


def shape_of(cfg):
    """(ExpertShape, label) of a layer replay's experts, resolved once per config in a process."""
    if cfg not in _SHAPES:
        from dodoco.replay.config import pick_runs

        _SHAPES[cfg] = layer_shape(cfg, pick_runs(cfg)[0] if cfg.runs else None)
    return _SHAPES[cfg]
