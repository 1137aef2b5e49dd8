"""Finding 1, EP invariance: does the expert straggler move when the EP degree N changes, and how
much of the per-rank receiver skew does each placement remove?

Input per run: its EP scan at one per-rank batch B as ``EPCurve``s (one metric and placement
against N: mean over steps, 95% interval, steps, per-layer means). The relative change of a
quantity over the judged N is (max_N q_N - min_N q_N) / min_N q_N, with q_N the mean over steps
(model level: the mean over MoE layers per step; per layer: each layer's own). N whose value rests
on two steps or fewer (``FEW_STEPS``) is kept in the evidence, flagged, and not judged. A run is
"intrinsic" when the model-level per-expert change is <= ``threshold`` (default 5%),
"placement-sensitive" otherwise, "undetermined" with fewer than two judged N. docs/findings.md.

Shape legend: n_N EP degrees scanned, L MoE layers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from dodoco import defaults
from dodoco.ep.mitigations import fraction_removed
from dodoco.errors import DodocoError
from dodoco.findings.verdict import Verdict, few

__all__ = ["DEFAULT_THRESHOLD", "EPCurve", "RunScan", "ep_invariance", "relative_change"]

DEFAULT_THRESHOLD = defaults.INVARIANCE_THRESHOLD
INTRINSIC, SENSITIVE, UNDETERMINED = "intrinsic", "placement-sensitive", "undetermined"
_TOL = 1e-12  # a change equal to the threshold up to rounding counts as within it


@dataclass(frozen=True)
class EPCurve:
    """One metric of one run against N at one B and placement.

    ep int [n_N]; mean, lo, hi float64 [n_N] (lo/hi NaN where the value rests on few steps);
    steps int [n_N]; layers float64 [n_N, L] per-layer means (empty [n_N, 0] when not kept).
    """

    ep: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    steps: np.ndarray
    layers: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def at(self, N: int) -> tuple[float, float, float, int] | None:
        """(mean, lo, hi, steps) at EP degree N, None if N was not scanned."""
        i = np.flatnonzero(self.ep == N)
        if not i.size:
            return None
        i = int(i[0])
        return float(self.mean[i]), float(self.lo[i]), float(self.hi[i]), int(self.steps[i])


@dataclass(frozen=True)
class RunScan:
    """The EP scan of one run at batch B: ``curves[(metric, placement)]`` for metric in
    ("max_mean", "receiver_skew"); part: "all" or "held-out" (what the placements were evaluated on)."""

    model: str
    condition: str
    kind: str
    seq_len: int
    E: int
    batch: int
    part: str
    curves: dict
    path: str = ""
    skipped: tuple[str, ...] = ()

    def placements(self) -> list[str]:
        return list(dict.fromkeys(p for m, p in self.curves if m == "receiver_skew"))


def relative_change(q) -> np.ndarray:
    """(max - min) / min over axis 0: q[n_N, ...] -> float64 [...]; NaN-ignoring, NaN if min <= 0."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[0] == 0:
        return np.full(q.shape[1:], np.nan)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns -> NaN
        lo, hi = np.nanmin(q, axis=0), np.nanmax(q, axis=0)
        return np.where(lo > 0, (hi - lo) / lo, np.nan)


def _evidence(s: RunScan, placements: list[str]) -> list[dict]:
    """Per N: per-expert max/mean and the receiver skew of each placement, with intervals and steps."""
    base = {
        "model": s.model,
        "condition": s.condition,
        "seq_len": s.seq_len,
        "E": s.E,
        "batch": s.batch,
        "part": s.part,
    }
    mm = s.curves[("max_mean", placements[0])]
    rows = []
    for i, N in enumerate(mm.ep):
        row = {
            **base,
            "ep": int(N),
            "steps": int(mm.steps[i]),
            "few_steps": few(mm.steps[i]),
            "max_mean": mm.mean[i],
            "max_mean_lo": mm.lo[i],
            "max_mean_hi": mm.hi[i],
        }
        for p in placements:
            got = s.curves.get(("receiver_skew", p))
            v = got.at(int(N)) if got is not None else None
            if v is not None:
                row.update({f"skew_{p}": v[0], f"skew_{p}_lo": v[1], f"skew_{p}_hi": v[2]})
        rows.append(row)
    return rows


def _judge(s: RunScan, placements: list[str], threshold: float) -> tuple[dict, list[dict]]:
    """One run -> (summary row, per-layer rows)."""
    mm = s.curves[("max_mean", placements[0])]
    ok = np.array([not few(n) for n in mm.steps], dtype=bool)
    judged = mm.ep[ok]
    change = float(relative_change(mm.mean[ok])) if ok.sum() >= 2 else float("nan")
    lay = relative_change(mm.layers[ok]) if ok.sum() >= 2 and mm.layers.size else np.empty(0)
    rs = s.curves.get(("receiver_skew", placements[0]))
    rs_ok = rs.mean[[not few(n) for n in rs.steps]] if rs is not None else np.empty(0)
    verdict = UNDETERMINED if not np.isfinite(change) else (INTRINSIC if change <= threshold + _TOL else SENSITIVE)
    summary = {
        "model": s.model,
        "condition": s.condition,
        "kind": s.kind,
        "seq_len": s.seq_len,
        "batch": s.batch,
        "part": s.part,
        "eps": ",".join(str(int(n)) for n in mm.ep),
        "judged_eps": ",".join(str(int(n)) for n in judged),
        "max_mean_min": float(np.min(mm.mean[ok])) if ok.any() else float("nan"),
        "max_mean_max": float(np.max(mm.mean[ok])) if ok.any() else float("nan"),
        "max_mean_change": change,
        "layer_change_max": float(np.nanmax(lay)) if np.isfinite(lay).any() else float("nan"),
        "worst_layer": int(np.nanargmax(lay)) if np.isfinite(lay).any() else -1,
        "layers_over": int(np.sum(lay > threshold + _TOL)),
        "receiver_skew_change": float(relative_change(rs_ok)) if rs_ok.size >= 2 else float("nan"),
        "verdict": verdict,
        "run": s.path,
    }
    per_layer = [
        {
            "model": s.model,
            "condition": s.condition,
            "seq_len": s.seq_len,
            "batch": s.batch,
            "layer": j,
            "max_mean_change": float(c),
            "over_threshold": bool(c > threshold + _TOL),
        }
        for j, c in enumerate(lay)
    ]
    return summary, per_layer


def _removal_rows(s: RunScan, placements: list[str]) -> list[dict]:
    """At each judged N: how much of the baseline placement's receiver skew each other placement removes."""
    base = s.curves.get(("receiver_skew", placements[0]))
    rows = []
    for p in placements[1:]:
        other = s.curves.get(("receiver_skew", p))
        if base is None or other is None:
            continue
        for i, N in enumerate(base.ep):
            v = other.at(int(N))
            if v is None or few(base.steps[i]):
                continue
            rows.append(
                {
                    "model": s.model,
                    "condition": s.condition,
                    "seq_len": s.seq_len,
                    "batch": s.batch,
                    "ep": int(N),
                    "baseline": placements[0],
                    "placement": p,
                    "skew_baseline": base.mean[i],
                    "skew": v[0],
                    "skew_lo": v[1],
                    "skew_hi": v[2],
                    "fraction_removed": fraction_removed(float(base.mean[i]), v[0]),
                }
            )
    return rows


def ep_invariance(scans: list[RunScan], *, placements=("contiguous",), threshold: float = DEFAULT_THRESHOLD) -> Verdict:
    """EP invariance of one or more runs from their scans.

    Per run: the per-expert max/mean and the receiver skew of every placement at each N (evidence,
    ``steps`` and ``few_steps`` per N), the relative change over the judged N at model level and
    per layer, and the verdict; how much of the first placement's receiver skew each other
    placement removes (table ``removal``). Overall: "intrinsic" when every judged run is,
    "placement-sensitive" when none is, "mixed" otherwise, "undetermined" when no run could be judged.
    """
    if not threshold >= 0:
        raise DodocoError(f"EP invariance threshold must be >= 0 (a fraction, 0.05 = 5%), got {threshold}")
    if not scans:
        raise DodocoError("the EP invariance verdict needs at least one run with an EP scan")
    summary, evidence, layers, removal, notes = [], [], [], [], []
    for s in scans:
        placements_s = [p for p in placements if ("receiver_skew", p) in s.curves] or s.placements()
        if ("max_mean", placements_s[0]) not in s.curves:
            raise DodocoError(
                f"the EP scan of {s.model}/{s.condition} has no per-expert max/mean for placement "
                f"'{placements_s[0]}': scan with that placement"
            )
        row, lay = _judge(s, placements_s, threshold)
        summary.append(row)
        evidence += _evidence(s, placements_s)
        layers += lay
        removal += _removal_rows(s, placements_s)
        notes += [f"{s.model}/{s.condition}: {why}" for why in s.skipped]
    judged = {r["verdict"] for r in summary if r["verdict"] != UNDETERMINED}
    overall = UNDETERMINED if not judged else (judged.pop() if len(judged) == 1 else "mixed")
    changes = [r["max_mean_change"] for r in summary if np.isfinite(r["max_mean_change"])]
    numbers = {
        "threshold": threshold,
        "baseline": placements[0],
        "placements": list(placements),
        "runs": len(summary),
        "intrinsic_runs": sum(r["verdict"] == INTRINSIC for r in summary),
        "sensitive_runs": sum(r["verdict"] == SENSITIVE for r in summary),
        "undetermined_runs": sum(r["verdict"] == UNDETERMINED for r in summary),
        "max_change": max(changes) if changes else float("nan"),
    }
    from dodoco.findings.sentences import ep_sentences

    tables = {"summary": summary, "evidence": evidence, "removal": removal, "layers": layers}
    v = Verdict("ep_invariance", overall, numbers, tables, notes)
    v.sentences = ep_sentences(v)
    return v
