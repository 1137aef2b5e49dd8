"""The three verdicts from run directories: glue between ``Run`` objects and the pure findings.

Each function takes opened runs (``dodoco.store.find_runs``) and returns a ``Verdict``. Runs whose
counts are aggregated over a window (imported, granularity "window") have no steps and are refused
by name.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.findings.bands import DEFAULT_HIGH, DEFAULT_LOW, bands
from dodoco.findings.ep_invariance import DEFAULT_THRESHOLD, ep_invariance
from dodoco.findings.mock_real import GiniSeries, mock_vs_real, step_gini
from dodoco.findings.verdict import Verdict, condition_kind

__all__ = ["DEFAULT_BATCHES", "bands_of_runs", "default_eps", "ep_invariance_of_runs", "gini_series",
           "mock_vs_real_of_runs", "per_step_runs", "reference_batch", "run_kind", "scan_run"]

DEFAULT_BATCHES = (1, 2, 4, 8, 16, 32)


def run_kind(run) -> str:
    """"mock" or "real" for a run (its manifest condition kind)."""
    return run.kind.value


def per_step_runs(runs, what: str) -> list:
    """The runs themselves; DodocoError naming any run without per-sequence/per-pass steps."""
    bad = [str(r.path) for r in runs if r.granularity == "window"]
    if bad:
        raise DodocoError(f"{what} needs per-step counts, but these runs hold one window aggregate: "
                          f"{', '.join(bad)}; leave them out or import per-pass dumps")
    return list(runs)


def default_eps(E: int) -> list[int]:
    """EP degrees scanned by default: 4, 8, 16, 32 and every larger power of two up to E."""
    eps = {4, 8, 16, 32}
    n = 64
    while n <= E:
        eps.add(n)
        n *= 2
    return sorted(e for e in eps if e <= max(E, 4))


def scan_run(run, *, ep=None, batch=DEFAULT_BATCHES, placement="contiguous", seed: int = 0, source=None,
             **kwargs):
    """The EP scan table of one run (``dodoco.ep.scan.ep_scan(run, ...).to_table()``).

    ``source``: a prefill StepSource of all the run's sequences in step_order(S, seed)
    (``dodoco.ep.steps.source_of(run.counts, seed)``) to reuse instead of building a new one.
    """
    from dodoco.ep.scan import ep_scan

    ep = ep or default_eps(int(run.counts.shape[2]))
    return ep_scan(run, ep=ep, batch=batch, placement=placement, seed=seed, source=source, **kwargs).to_table()


def ep_invariance_of_runs(runs, *, ep=None, batch: int | None = None, placement: str = "contiguous",
                          threshold: float = DEFAULT_THRESHOLD, seed: int = 0, scans=None) -> Verdict:
    """EP invariance of each run (scanned here unless ``scans`` gives their tables, same order)."""
    runs = per_step_runs(runs, "the EP invariance verdict")
    if scans is None:
        batches = [batch] if batch else DEFAULT_BATCHES
        scans = [scan_run(r, ep=ep, batch=batches, placement=placement, seed=seed) for r in runs]
    return ep_invariance(scans, batch=batch, placement=placement, threshold=threshold)


def gini_series(runs, batches=DEFAULT_BATCHES, seed: int = 0) -> list[GiniSeries]:
    """Per-step model-level Gini of each run at each batch size (``step_gini``)."""
    runs = per_step_runs(runs, "per-step Gini")
    return [GiniSeries(r.model, r.condition, run_kind(r), r.seq_len, step_gini(r.counts, batches, seed),
                       str(r.path)) for r in runs]


def mock_vs_real_of_runs(runs, *, batches=DEFAULT_BATCHES, seed: int = 0, series=None, **kwargs) -> Verdict:
    """Mock vs real over runs (each model needs a mock and a real-text run of one seq_len)."""
    return mock_vs_real(series if series is not None else gini_series(runs, batches, seed), seed=seed, **kwargs)


def reference_batch(series: list[GiniSeries], batch: int = 8) -> int:
    """The batch size bands compare at: ``batch``, lowered to the largest B every series has."""
    common = set.intersection(*(set(s.steps) for s in series)) if series else set()
    if not common:
        raise DodocoError("the runs share no batch size: observe at least one sequence per run")
    below = [b for b in common if b <= batch]
    return max(below) if below else min(common)


def bands_of_runs(runs, *, batch: int = 8, seed: int = 0, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH,
                  series=None, **kwargs) -> Verdict:
    """Bands from the per-step mean Gini of each run at the reference batch (``reference_batch``)."""
    series = series if series is not None else gini_series(runs, sorted({1, batch}), seed)
    B = reference_batch(series, batch)
    rows = [{"model": s.model, "condition": s.condition, "kind": s.kind, "seq_len": s.seq_len,
             "gini": float(np.nanmean(s.steps[B])), "run": s.path} for s in series]
    v = bands(rows, low=low, high=high, **kwargs)
    v.numbers["batch"] = B
    for r in v.evidence:
        r["batch"] = B
    return v
