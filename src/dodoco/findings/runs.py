"""What the findings read from a run: its kind, K, step source and EP scan.

This is the one place where ``dodoco.findings`` touches ``dodoco.store.Run`` and the EP scan; the
verdicts themselves are pure functions on the arrays returned here. Shape legend: S sequences,
L MoE layers, E routed experts, N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco.defaults import default_eps
from dodoco.errors import DodocoError
from dodoco.findings.ep_invariance import EPCurve, RunScan
from dodoco.findings.verdict import few

__all__ = ["ep_batch", "evaluated", "result_curves", "scan"]

_METRICS = ("max_mean", "receiver_skew")


def evaluated(S: int, placements, seed: int = 0) -> int:
    """Units the placements are evaluated on (``ep.placements.evaluation_plan``: with a fitted
    placement, the held-out part); S when there are too few units to fit on (the scan then leaves
    the fitted placements out and says so)."""
    from dodoco.ep.placements import evaluation_plan

    try:
        return len(evaluation_plan(list(placements), S, seed).eval_idx)
    except DodocoError:
        return S


def ep_batch(S: int, E: int, options) -> int:
    """The per-rank batch B of a run's EP scan: ``options.ep_batch``, else the largest of 1, 2, 4, 8
    that leaves more than FEW_STEPS steps at the largest N scanned (N <= E), else 1."""
    from dodoco.findings.verdict import FEW_STEPS

    if options.ep_batch:
        return int(options.ep_batch)
    n = evaluated(S, options.placement, options.seed)
    top = max([N for N in (options.ep or default_eps(E)) if N <= E] or [1])
    return max([b for b in (1, 2, 4, 8) if (FEW_STEPS + 1) * top * b <= n], default=1)


def result_curves(result, B: int, metrics=_METRICS) -> dict:
    """{(metric, placement): EPCurve} of an EP scan (``ScanResult``: ``ep_scan``, ``decode_scan``)
    at batch B: model-level mean and interval per N (interval NaN where it rests on few steps),
    steps, and the per-layer means of each N."""
    curves = {}
    names = list(dict.fromkeys(k[2] for k in result.keys if k[0] == B))
    for p in names:
        for m in metrics:
            s = result.series(m, p, B)
            if not s["ep"].size:
                continue
            flag = np.array([few(n) for n in s["steps"]], dtype=bool)
            lo, hi = np.where(flag, np.nan, s["lo"]), np.where(flag, np.nan, s["hi"])
            layers = (
                np.stack([result.series(m, p, B, layer=j)["mean"] for j in range(result.n_layers)], axis=1)
                if result.n_layers
                else np.empty((s["ep"].size, 0))
            )
            curves[(m, p)] = EPCurve(s["ep"], s["mean"], lo, hi, s["steps"], layers)
    return curves


def _skipped_text(reasons: list[dict], B: int, part: str) -> tuple[str, ...]:
    """What the scan left out, in a sentence or two (every N without a step in one)."""
    big = sorted({int(r["ep"]) for r in reasons if r.get("placement") is None and r.get("ep") is not None})
    out = (
        [
            f"N={','.join(map(str, big))} not scanned at B={B}: a step of N x B units needs more than the "
            f"units evaluated ({part})"
        ]
        if big
        else []
    )
    return tuple(out + list(dict.fromkeys(r["reason"] for r in reasons if r.get("placement") is not None)))


def scan(run, options) -> RunScan:
    """The EP scan of ``run`` at its batch (``ep_batch``) for ``options.placement`` over ``options.ep``
    (default ``default_eps(E)``), as curves of per-expert max/mean and receiver skew against N."""
    from dodoco.ep.scan import ep_scan

    B = ep_batch(run.S, run.E, options)
    result = ep_scan(
        run,
        ep=list(options.ep or default_eps(run.E)),
        batch=[B],
        placement=list(options.placement),
        seed=options.seed,
        n_boot=options.n_boot,
    )
    part = result.meta.get("part", "all")
    skipped = _skipped_text(result.skipped, B, part)
    curves = result_curves(result, B)
    if not curves:
        raise DodocoError(f"no EP degree fits run {run.path} at B={B}: {'; '.join(skipped) or 'nothing scanned'}")
    return RunScan(
        run.model, run.condition, run.kind.value, run.seq_len, run.E, B, part, curves, str(run.path), skipped
    )
