"""Rows and summary of the whole-layer replay (``dodoco replay --layer``): the step waits for its slowest rank.

From every rank's stage times t[N, iters, P] of one case and dispatcher (``layer_row``):

- ``whole_layer``: per iteration the slowest rank's total (max over ranks of the sum of its stages), median,
  p10 and p90 over iterations: the step's time;
- ``dispatch``: as in the dispatch replay, the sum over dispatch stages of each stage's max over ranks;
- ``experts``: per iteration the busiest rank's experts stage (max over ranks), median, p10, p90;
  ``experts_ms``: each rank's median experts time; ``loads``: each rank's tokens per local expert;
- ``combine``: per iteration the layer time minus the latest rank's end of experts (and unsort), i.e.
  the combine on the critical path (a light rank's own combine stage also holds its wait for the
  busiest rank's experts, which is counted once, in ``experts``);
- ``ranks``: each rank's median per stage and total; ``critical_rank``: the rank with the longest
  median total.

The result is the dispatch replay's (``dodoco.replay/2``) with ``mode: "layer"``, the experts
(``layer``: shape, kernel) and ``layer_summary``: per dispatcher and condition, means over cases and
``vs_balanced`` (layer time over the balanced control's with the same per-rank send rows).
``dodoco simulate`` never fits on a layer result (``simulate.samples`` refuses it).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

__all__ = ["assemble_any", "layer_row", "layer_summary"]


def layer_row(d, case, t, stages, check: str, cfg, sets: int, link_gbps: float) -> dict:
    """One row of the layer replay: dispatcher d on a case; t[N, iters, P] ms, every rank's stages."""
    from dodoco.replay.harness import stats
    from dodoco.replay.layer import rank_loads
    from dodoco.replay.layer import shape_of
    from dodoco.replay.results import case_row

    nd, ie = d.n_dispatch, stages.index("experts")
    as_d = SimpleNamespace(name=d.name, bytes=d.bytes, stages=stages, n_dispatch=nd)
    row = case_row(as_d, case, t.max(axis=0), check, cfg, sets, link_gbps)
    total = t.sum(-1)  # [N, iters]
    layer = total.max(0)
    through = t[:, :, : len(stages) - (len(d.stages) - nd)].sum(-1).max(0)  # latest end of experts (and unsort)
    shape, label = shape_of(cfg)
    row.update(
        mode="layer",
        whole_layer=stats(layer),
        experts=stats(t[:, :, ie].max(0)),
        combine=stats(np.maximum(layer - through, 0.0)),
        experts_ms=[float(np.median(t[r, :, ie])) for r in range(t.shape[0])],
        loads=[rank_loads(case, r).tolist() for r in range(t.shape[0])],
        ranks=[
            {
                "rank": r,
                "total_ms": float(np.median(total[r])),
                "stages": {n: float(np.median(t[r, :, k])) for k, n in enumerate(stages)},
            }
            for r in range(t.shape[0])
        ],
        critical_rank=int(np.argmax(np.median(total, axis=1))),
        kernel=cfg.kernel,
        shape={"hidden": shape.hidden, "width": shape.width, "label": label},
    )
    return row


def layer_summary(rows: list[dict]) -> list[dict]:
    """Per dispatcher and condition: means over cases of the layer rows (module docstring)."""
    from dodoco.replay.results import by_case_group

    out = []
    for disp, cond, rs, ref in by_case_group(rows, "whole_layer"):
        mean = lambda f: float(np.mean([f(r) for r in rs]))  # noqa: E731
        layer = mean(lambda r: r["whole_layer"]["median_ms"])
        out.append(
            {
                "dispatcher": disp,
                "condition": cond,
                "kind": rs[0]["kind"],
                "N": rs[0]["N"],
                "cases": len(rs),
                "MB_per_rank": mean(lambda r: r["per_rank_bytes"]) / 1e6,
                "recv_skew": mean(lambda r: r["receiver_skew"]),
                "layer_ms": layer,
                "layer_p90": mean(lambda r: r["whole_layer"]["p90_ms"]),
                "dispatch_ms": mean(lambda r: r["dispatch"]["median_ms"]),
                "experts_ms": mean(lambda r: r["experts"]["median_ms"]),
                "experts_mean_rank_ms": mean(lambda r: float(np.mean(r["experts_ms"]))),
                "combine_ms": mean(lambda r: r["combine"]["median_ms"]),
                "vs_balanced": layer / float(np.mean(ref)) if ref else float("nan"),
            }
        )
    return out


def assemble_any(cfg, N: int, device: dict, prov: dict, dispatchers: dict, rows, overhead, sweep, link) -> dict:
    """The replay result (``results.assemble``); a layer replay's marked and summarised as such."""
    from dodoco.replay.results import assemble

    res = assemble(cfg, N, device, prov, dispatchers, rows, overhead, sweep, link)
    if cfg.layer:
        from dodoco.replay.layer import shape_of

        from dodoco.replay.megatron_layer import grouped_mlp_line

        shape, label = shape_of(cfg)
        res.update(
            mode="layer",
            layer={
                "kernel": cfg.kernel,
                "hidden": shape.hidden,
                "width": shape.width,
                "shape": label,
                "megatron_grouped_mlp": grouped_mlp_line(),
            },
            layer_summary=layer_summary(rows),
        )
    return res
