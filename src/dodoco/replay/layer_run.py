"""One rank of the whole-layer replay: each case through each dispatcher with the rank's experts in between.

``layer_one`` is ``runner.replay_one`` for ``--layer``: the same buffers, the same check (plus the
experts' input, ``layer.layer_check``), the same harness (every rank's stage times gathered). The
experts of a process are made once per (kernel, shape, local experts) and kept (``experts_for``):
``grouped_mm`` through ``compute.kernels.ExpertBench`` (weights rotated past L2), ``megatron`` through
Megatron-Core's ``SequentialMLP`` (``replay.megatron_layer``). ``layer_dispatchers`` lists the
dispatchers the layer replay cannot drive as not measured, with the reason; ``layer_memory`` adds the
expert weights to the memory check.

Shape legend: N ranks, G local experts, H hidden size, I expert width.
"""

from __future__ import annotations

import numpy as np

from dodoco.replay import harness as hz
from dodoco.replay.layer import layer_check, layer_plan, layer_stages, layer_step, shape_of

__all__ = ["Experts", "experts_for", "layer_dispatchers", "layer_memory", "layer_one"]

_EXPERTS: dict = {}


class Experts:
    """The local experts of this rank: ``kernel`` ``grouped_mm`` (ExpertBench) or ``megatron`` (SequentialMLP)."""

    def __init__(self, kernel: str, shape, G: int, device, N: int):
        self.kernel, self.shape, self.G = kernel, shape, G
        if kernel == "megatron":
            from dodoco.replay.megatron_layer import sequential_mlp

            self.mlp, self.bench = sequential_mlp(shape, G, N), None
        else:
            from dodoco.compute.kernels import ExpertBench

            self.mlp, self.bench = None, ExpertBench(shape, G, device)

    def __call__(self, x, plan, k: int):
        """The experts' output [rows, H] of their grouped input x [rows, H]; nothing runs on an empty rank."""
        if plan.rows == 0:
            return x[:0]
        if self.bench is not None:
            return self.bench.grouped_mm(x, plan.offs, k)
        from dodoco.replay.megatron_layer import sequential_forward

        return sequential_forward(self.mlp, x, plan)


def experts_for(cfg, G: int, device, N: int) -> Experts:
    shape, _ = shape_of(cfg)
    key = (cfg.kernel, shape, G, str(device))
    if key not in _EXPERTS:
        _EXPERTS[key] = Experts(cfg.kernel, shape, G, device, N)
    return _EXPERTS[key]


def layer_dispatchers(cfg, names: list[str], status: dict, device) -> list[str]:
    """The names the layer replay can run; the others marked not measured (``status``) with the reason."""
    from dodoco.errors import DodocoError
    from dodoco.replay.dispatchers import get

    shape_of(cfg)  # a wrong shape is a user error before any buffer
    why_kernel = None
    if cfg.kernel == "megatron":
        from dodoco.replay.megatron_layer import megatron_layer_probe

        why_kernel = megatron_layer_probe(cfg.backend)
        if why_kernel and ("megatron" in cfg.explicit_dispatchers or set(cfg.dispatchers) <= {"megatron"}):
            raise DodocoError(why_kernel)
    keep = []
    for n in names:
        why = why_kernel or get(n).layer_probe()
        if why:
            status[n].update(status="not measured", reason=why)
        else:
            keep.append(n)
    if not keep:
        raise DodocoError(
            "none of the dispatchers named can run the whole layer here: "
            + "; ".join(f"{n}: {status[n]['reason']}" for n in names)
        )
    return keep


def layer_memory(cfg, cases, rank: int, l2: int) -> int:
    """Bytes the experts need on ``rank`` at their peak: ExpertBench's bf16 pool (at least 2 G experts and 3 x L2)
    while its gate/up weights are drawn in float32 (two float32 copies of them), then one expert-sorted
    copy of the received rows, the experts' output and their 2I-wide intermediate."""
    shape, _ = shape_of(cfg)
    G = max(int(c.slots[rank]) for c in cases)
    pool = max(2 * G, -(-3 * l2 // shape.weight_bytes), 2)
    rows = max(int(np.asarray(c.splits)[:, rank].sum()) for c in cases)
    draw = pool * 2 * shape.width * shape.hidden * 4 * 2
    return int(pool * shape.weight_bytes + draw + 3 * rows * cfg.row_bytes + 2 * rows * 2 * shape.width * 2)


def layer_one(d, data, case, ctx, link: dict) -> tuple[dict, None]:
    """Check and time one case through dispatcher d with the rank's experts -> (layer row, None)."""
    from dodoco.replay.layer_results import layer_row
    from dodoco.replay.casecheck import case_sets, check_case

    cfg = ctx.cfg
    sets = case_sets(case, ctx)
    state = d.prepare(data, sets)
    plan = layer_plan(d, data)
    check = check_case(d, data, state, case, ctx, more=lambda st: layer_check(d, st, plan, data))
    experts = experts_for(cfg, len(plan.loads), ctx.device, ctx.N)
    stages = layer_stages(d)
    t = hz.time_collective(
        layer_step(d, state, plan, experts), sets, cfg.warmup, cfg.iters, len(stages), ctx.device, per_rank=True
    )
    row = layer_row(d, case, t, stages, check, cfg, sets, link["GBps"])
    d.release(state)
    return row, None
