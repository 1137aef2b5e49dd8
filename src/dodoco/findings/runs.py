"""What the findings read from a run: its kind, K, step source and EP scan.

This is the one place where ``dodoco.findings`` touches ``dodoco.store.Run`` and the EP scan; the
verdicts themselves are pure functions on the arrays returned here. Shape legend: S sequences,
L MoE layers, E routed experts, N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError, did_you_mean
from dodoco.findings.ep_invariance import EPCurve, RunScan
from dodoco.findings.verdict import few

__all__ = ["check_placements", "default_eps", "ep_batch", "evaluated", "run_K", "run_kind", "scan",
           "scan_run", "source", "table_curves"]

_METRICS = ("max_mean", "receiver_skew")


def run_kind(run) -> str:
    """"mock" or "real": the condition kind the run's manifest records (never guessed from the name)."""
    return run.kind.value


def run_K(run) -> int:
    """Experts per token of the run; the store's DodocoError naming the fix when it is not recorded."""
    return run.K


def source(run, seed: int = 0):
    """The run's StepSource: all units in step_order(S, seed); a window aggregate is one step."""
    try:
        return run.source(seed)
    except ModuleNotFoundError:  # TEMPORARY until dodoco.ep.steps is on main
        from dodoco.ep.scan import scan_source

        return scan_source(run.counts, seed)


def check_placements(names) -> None:
    """DodocoError naming an unknown placement (and the closest known one)."""
    from dodoco.ep.placement import PLACEMENTS

    for name in names:
        if name not in PLACEMENTS:
            raise did_you_mean("placement", name, PLACEMENTS)


def default_eps(E: int) -> list[int]:
    """EP degrees scanned by default: 4, 8, 16, 32 and every larger power of two up to E."""
    eps = {4, 8, 16, 32}
    n = 64
    while n <= E:
        eps.add(n)
        n *= 2
    return sorted(e for e in eps if e <= max(E, 4))


def evaluated(S: int, placements, seed: int = 0) -> tuple[int, str]:
    """(units the placements are evaluated on, "all" or "held-out"): fitted placements are fitted on
    one part of the units and every placement is evaluated on the other (``ep.scan.eval_groups``)."""
    from dodoco.ep.scan import eval_groups

    _, groups = eval_groups(S, list(placements), 0.5, seed)
    idx = groups[0][0]
    return (S, "all") if idx is None else (len(idx), "held-out")


def ep_batch(S: int, E: int, options) -> int:
    """The per-rank batch B of a run's EP scan: ``options.ep_batch``, else the largest of 1, 2, 4, 8
    that leaves more than FEW_STEPS steps at the largest N scanned (N <= E), else 1."""
    from dodoco.findings.verdict import FEW_STEPS

    if options.ep_batch:
        return int(options.ep_batch)
    n, _ = evaluated(S, options.placement, options.seed)
    top = max([N for N in (options.ep or default_eps(E)) if N <= E] or [1])
    return max([b for b in (1, 2, 4, 8) if (FEW_STEPS + 1) * top * b <= n], default=1)


def scan_run(run, *, ep=None, batch=(1, 2, 4, 8, 16, 32), placement="contiguous", seed: int = 0, source=None,
             **kwargs):
    """The EP scan table of one run (``dodoco.ep.scan``) with the run's labels, from ``source`` when given."""
    from dodoco.ep.scan import ep_scan, run_scan, scan_source, sum_sequences

    S, _, E = run.counts.shape
    ep = ep or default_eps(int(E))
    if source is None:
        return ep_scan(run.counts, ep=ep, batch=batch, placement=placement, seed=seed, model=run.model,
                       condition=run.condition, seq_len=run.seq_len, **kwargs)
    opts = {"fit_frac": 0.5, "common_eval": True, "n_boot": 1000, "strict": False, **kwargs}
    labels = dict(model=run.model, condition=run.condition, seq_len=run.seq_len, regime="prefill")
    return run_scan(int(S), int(E), lambda idx: source if idx is None else scan_source(run.counts, seed, idx),
                    lambda idx: sum_sequences(run.counts, idx), placement, ep, batch, seed=seed,
                    labels=labels, placement_kwargs={}, **opts)


def _curve(d: dict, sel: np.ndarray, steps_of) -> EPCurve:
    """One metric/placement of a scan table's columns ``d`` (rows ``sel``) as an EPCurve."""
    eps = np.unique(d["ep"][sel])
    layers = np.unique(d["layer"][sel & (d["layer"] >= 0)])
    grid = {}
    for stat in ("mean", "ci_lo", "ci_hi"):
        g = np.full((eps.size, layers.size + 1), np.nan)
        k = sel & (d["statistic"] == stat)
        g[np.searchsorted(eps, d["ep"][k]), np.searchsorted(layers, d["layer"][k]) + (d["layer"][k] >= 0)] = \
            d["value"][k]
        grid[stat] = g
    steps = np.array([steps_of(int(N)) for N in eps], dtype=np.int64)
    nan_ci = np.array([few(n) for n in steps], dtype=bool)
    lo, hi = grid["ci_lo"][:, 0].copy(), grid["ci_hi"][:, 0].copy()
    lo[nan_ci], hi[nan_ci] = np.nan, np.nan
    return EPCurve(eps.astype(np.int64), grid["mean"][:, 0], lo, hi, steps, grid["mean"][:, 1:])


def table_curves(table, placements, steps_of) -> dict:
    """{(metric, placement): EPCurve} of a one-batch EP scan table (``ep_scan``, ``decode_scan``) for
    metric in (max_mean, receiver_skew); ``steps_of(N)``: the steps each N's statistics rest on."""
    d = {c: table.column(c).to_numpy(zero_copy_only=False)
         for c in ("ep", "placement", "layer", "metric", "statistic", "value")}
    curves = {}
    for p in placements:
        for m in _METRICS:
            sel = (d["placement"] == p) & (d["metric"] == m)
            if sel.any():
                curves[(m, p)] = _curve(d, sel, steps_of)
    return curves


def _skipped_text(reasons: list[dict], B: int, n_eval: int, part: str) -> tuple[str, ...]:
    """What the scan left out, in a sentence or two (every too-large N in one)."""
    big = sorted({int(r["ep"]) for r in reasons if r.get("placement") is None})
    out = [f"N={','.join(map(str, big))} not scanned: a step of N x B={B} units needs more than the {n_eval} "
           f"units evaluated ({part})"] if big else []
    return tuple(out + list(dict.fromkeys(r["reason"] for r in reasons if r.get("placement") is not None)))


def scan(run, options, src=None) -> RunScan:
    """The EP scan of ``run`` at its batch (``ep_batch``) for ``options.placement`` over ``options.ep``
    (default ``default_eps(E)``), as curves of per-expert max/mean and receiver skew against N."""
    from dodoco.ep.scan import skipped_reasons

    S, _, E = run.counts.shape
    B = ep_batch(int(S), int(E), options)
    n_eval, part = evaluated(int(S), options.placement, options.seed)
    table = scan_run(run, ep=list(options.ep or default_eps(int(E))), batch=[B], placement=list(options.placement),
                     seed=options.seed, n_boot=options.n_boot, source=src)
    curves = table_curves(table, options.placement, lambda N: n_eval // (N * B))
    skipped = _skipped_text(skipped_reasons(table), B, n_eval, part)
    if not curves:
        raise DodocoError(f"no EP degree fits run {run.path} at B={B}: {'; '.join(skipped) or 'nothing scanned'}")
    return RunScan(run.model, run.condition, run_kind(run), run.seq_len, int(E), B, part, curves, str(run.path),
                   skipped)
