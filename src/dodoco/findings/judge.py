"""``judge(runs, options) -> Findings``: the one path from runs to verdicts.

The report, ``dodoco findings`` and the Python API all call it. It opens the runs, computes each
intermediate once (per run: the step source, the per-step Gini at every batch size and its trend,
the EP scan) and judges the three verdicts on them, each with its evidence tables and sentences.
A verdict that cannot be judged on these runs (e.g. mock vs real without a mock run) is left out
with the reason in ``Findings.skipped``. docs/findings.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dodoco.ep.steps import run_source
from dodoco.errors import DodocoError
from dodoco.findings.bands import bands
from dodoco.findings.ep_invariance import ep_invariance
from dodoco.findings.mock_real import GiniSeries, batch_trend, mock_vs_real, step_gini
from dodoco.findings.options import FindingsOptions
from dodoco.findings.verdict import Verdict

__all__ = ["FINDINGS", "Findings", "judge", "open_runs"]

#: The verdicts, in the order they are judged and reported.
FINDINGS = ("ep_invariance", "mock_vs_real", "bands")


@dataclass
class Findings:
    """The verdicts of a set of runs and the intermediates they rest on.

    verdicts: {name: Verdict} for each of FINDINGS that could be judged; skipped: {name: why not}.
    runs: the runs judged, in order. series / trends / scans: per run (keyed by ``key(run)``) the
    per-step Gini at every batch size (GiniSeries), its batch-size trend, and the EP scan (RunScan);
    a run missing from ``scans`` could not be scanned (its reason is in ``scan_errors``).
    sources: each run's step source (``source(run)``), kept for further per-step work (the report's
    mitigation and NeuSim sections reuse it).
    """

    options: FindingsOptions
    runs: list
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    series: dict = field(default_factory=dict)
    trends: dict = field(default_factory=dict)
    scans: dict = field(default_factory=dict)
    scan_errors: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict, repr=False)

    @staticmethod
    def key(run) -> str:
        return str(run.path)

    def source(self, run):
        """The run's prefill StepSource in the options' seeded order (built once, shared)."""
        k = self.key(run)
        if k not in self.sources:
            self.sources[k] = run_source(run, self.options.seed)
        return self.sources[k]

    def gini_at(self, run, batch: int) -> dict | None:
        """The run's per-step Gini at ``batch``, lowered to the largest B below it the run has (the
        smallest B when none is below): {batch, steps, gini, gini_lo, gini_hi}; None without steps."""
        t = self.trends[self.key(run)]
        below = [b for b in t["batches"] if b <= batch] or t["batches"][:1]
        if not below:
            return None
        i = t["batches"].index(max(below))
        return {
            "batch": t["batches"][i],
            "steps": t["n"][i],
            "gini": float(t["means"][i]),
            "gini_lo": float(t["mean_lo"][i]),
            "gini_hi": float(t["mean_hi"][i]),
        }

    @property
    def sentences(self) -> list[str]:
        """Every verdict's sentences in FINDINGS order, then why any verdict was not judged."""
        out = [s for name in FINDINGS if name in self.verdicts for s in self.verdicts[name].sentences]
        return out + [f"{name.replace('_', ' ')} not judged: {why}" for name, why in self.skipped.items()]

    @property
    def headlines(self) -> list[str]:
        """The headline sentences only (what holds over every run or model), without per-run detail."""
        out = []
        for name in FINDINGS:
            v = self.verdicts.get(name)
            if v is not None:
                out += v.sentences[: _headline_count(v)]
        return out + [f"{name.replace('_', ' ')} not judged: {why}" for name, why in self.skipped.items()]

    def to_dict(self) -> dict:
        """JSON-ready: options, verdicts (with tables), skipped, sentences."""
        return {
            "options": self.options.to_dict(),
            "verdicts": {k: v.to_dict() for k, v in self.verdicts.items()},
            "skipped": dict(self.skipped),
            "sentences": self.sentences,
        }


def _headline_count(v: Verdict) -> int:
    """How many of a verdict's sentences are headlines (the rest are per run, pair or model)."""
    per_item = {"ep_invariance": len(v.summary), "mock_vs_real": len(v.summary), "bands": 0}[v.finding]
    return len(v.sentences) - per_item


def open_runs(runs) -> list:
    """Run objects from runs or paths (folders are searched), each readable: DodocoError otherwise."""
    from dodoco.store.run import find_runs

    runs = list(runs)
    paths = [r for r in runs if not hasattr(r, "manifest")]
    opened = [r for r in runs if hasattr(r, "manifest")] + (find_runs(paths) if paths else [])
    if not opened:
        raise DodocoError("no runs given: pass run directories or folders holding them")
    for r in opened:
        _ = r.counts.shape  # a missing or corrupt counts file fails here, before any work
    return opened


def _series(f: Findings) -> None:
    """Per-step Gini (every batch size) and its trend of every run, from each run's step source."""

    o = f.options
    for run in f.runs:
        k = f.key(run)
        f.series[k] = GiniSeries(
            run.model,
            run.condition,
            run.kind.value,
            run.seq_len,
            step_gini(None, o.batch, o.seed, source=f.source(run)),
            k,
        )
        f.trends[k] = batch_trend(f.series[k].steps, o.n_boot, o.seed)


def _scans(f: Findings) -> None:
    from dodoco.findings.runs import scan

    for run in f.runs:
        try:
            f.scans[f.key(run)] = scan(run, f.options)
        except DodocoError as exc:
            f.scan_errors[f.key(run)] = str(exc)


def _band_rows(f: Findings) -> list[dict]:
    """One row per run: the per-step mean Gini at the reference batch, its interval and steps."""
    rows = []
    for run in f.runs:
        s, at = f.series[f.key(run)], f.gini_at(run, f.options.ref_batch)
        if at is not None:
            rows.append(
                {
                    "model": s.model,
                    "condition": s.condition,
                    "kind": s.kind,
                    "seq_len": s.seq_len,
                    **at,
                    "run": f.key(run),
                }
            )
    return rows


def _verdicts(f: Findings) -> None:
    o = f.options
    jobs = {
        "ep_invariance": lambda: ep_invariance(
            [f.scans[f.key(r)] for r in f.runs if f.key(r) in f.scans], placements=o.placement, threshold=o.threshold
        ),
        "mock_vs_real": lambda: mock_vs_real(
            [f.series[f.key(r)] for r in f.runs],
            n_boot=o.n_boot,
            seed=o.seed,
            ref_batch=o.ref_batch,
            trends=[f.trends[f.key(r)] for r in f.runs],
        ),
        "bands": lambda: bands(_band_rows(f), low=o.low, high=o.high, k=o.groups, batch=o.ref_batch),
    }
    for name in FINDINGS:
        try:
            f.verdicts[name] = jobs[name]()
        except DodocoError as exc:
            f.skipped[name] = str(exc)
    if "ep_invariance" in f.verdicts:
        f.verdicts["ep_invariance"].notes += [f"not scanned: {k}: {why}" for k, why in f.scan_errors.items()]


def judge(runs, options: FindingsOptions | None = None) -> Findings:
    """The verdicts of ``runs`` (Run objects or paths) under ``options`` (default FindingsOptions()).

    >>> f = judge(["runs/qwen3"])                      # doctest: +SKIP
    >>> f.verdicts["ep_invariance"].verdict, f.sentences[0]   # doctest: +SKIP
    """
    options = (options or FindingsOptions()).findings_options()
    f = Findings(options, open_runs(runs))
    _series(f)
    _scans(f)
    _verdicts(f)
    return f
