"""Report sections on dispatch cost, from result files attached with ``dodoco report --attach``
(``dodoco.report.attachments``): measured replays (``dodoco.replay/2`` rows, or the earlier replay
files) and simulate predictions. Each section first says where every attached number comes from
(the trace's model and run, the machine or cluster, the calibration), naming a trace from a model
that is not among the report's runs. Each is ``(ctx) -> Section`` (report/build.py); with nothing
attached they are skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.report import plots_dispatch as pd
from dodoco.report.attachments import provenance_rows
from dodoco.report.html import esc
from dodoco.report.section import Figure, Section, SkipSection, Table
from dodoco.replay.results import SUMMARY_COLUMNS as _SUMMARY

__all__ = ["dry_run_section", "replay_section", "simulate_section"]


def _attached(ctx, kinds: tuple[str, ...], dry: bool | None = None) -> list:
    """Attachments of ``kinds``; replays split by ``dry`` (CPU dry runs, or GPU measurements)."""
    from dodoco.replay.results import dry_run

    return [
        a for a in ctx.attachments if a.kind in kinds and (dry is None or any(dry_run(r) for r in a.replays) == dry)
    ]


def _provenance(ctx, attached) -> Table:
    rows = provenance_rows(attached, {r.model for r in ctx.runs})
    return Table("attached-results", rows, "where each attached result comes from")


def _size_bucket(b: float) -> float:
    return float(2 ** round(np.log2(b))) if b > 0 else 0.0


def _points(rows: list[dict]) -> dict[str, list[dict]]:
    """Replay rows -> panels per (N, message size) of {dispatcher, kind, receiver_skew, dispatch_ms, p10, p90}."""
    panels: dict[tuple, list] = {}
    for r in rows:
        d = r.get("dispatch") or {}
        if d.get("median_ms") is None or r.get("receiver_skew") is None:
            continue
        key = (int(r["N"]), _size_bucket(float(r["per_rank_bytes"])))
        panels.setdefault(key, []).append(
            {
                "dispatcher": r["dispatcher"],
                "kind": r["kind"],
                "receiver_skew": float(r["receiver_skew"]),
                "dispatch_ms": float(d["median_ms"]),
                "p10_ms": float(d.get("p10_ms", np.nan)),
                "p90_ms": float(d.get("p90_ms", np.nan)),
            }
        )
    return {f"N={n}, about {pd.bytes_label(b)} per rank": pts for (n, b), pts in sorted(panels.items())}


def _targets(data: dict) -> list[dict]:
    """Targets as rows: nested dicts flattened (``a.b``), so every value is shown."""
    rows = []
    for name, t in (data.get("targets") or {}).items():
        row = {"target": name}
        for k, v in t.items():
            if isinstance(v, dict):
                row.update({f"{k}.{kk}": vv for kk, vv in v.items()})
            else:
                row[k] = v
        rows.append(row)
    return rows


def _caveats(a) -> list[str]:
    from dodoco.replay.results import caveats

    return [f"{a.name}, N={rep['N']}: {c}" for rep in a.replays for c in caveats(rep)]


def _replay_one(a, section: Section) -> None:
    stem, d = a.path.stem, a.data
    section.html += (
        f"<p><b>{esc(a.name)}</b> ({esc(a.machine)}; trace from {esc(', '.join(a.models))}). "
        "Max over ranks per iteration, median and p10/p90 over iterations.</p>"
    )
    section.notes += [c for c in _caveats(a) if "harness" in c]
    points = _points(a.rows)
    if points:
        section.figures.append(
            Figure(
                f"dispatch-vs-skew-{stem}",
                pd.dispatch_vs_skew(
                    points, f"Measured dispatch time against receiver skew, per dispatcher and message size ({a.name})"
                ),
                f"{a.name}: each point one dispatcher on one case kind (marker); bars p10..p90 over iterations; "
                "the synthetic skew controls joined per dispatcher",
            )
        )
    sweeps = {f"N = {rep['N']}": rep["sweep"] for rep in a.replays if rep.get("sweep")}
    if sweeps:
        png = pd.sweep(sweeps, f"Uniform all_to_all_single ({a.name})")
        section.figures.append(
            Figure(f"sweep-{stem}", png, f"{a.name}: NCCL bus bandwidth against message size, measured")
        )
    status = [
        {"N": rep["N"], "dispatcher": k, **v} for rep in a.replays for k, v in (rep.get("dispatchers") or {}).items()
    ]
    if status:
        section.tables.append(
            Table(f"dispatchers-{stem}", status, f"{a.name}: dispatchers measured, and why others were not")
        )
    summary = a.summary
    section.tables.append(
        Table(
            f"replay-{stem}",
            summary,
            f"{a.name}: mean over cases per dispatcher and condition",
            [c for c in _SUMMARY if any(c in r for r in summary)],
        )
    )
    validation = d.get("validation") or []
    if validation:
        png = pd.predicted_vs_measured(validation, f"Simulator against held-out replays ({a.name})")
        section.figures.append(Figure(f"simulator-{stem}", png, f"{a.name}: predicted vs measured"))
        section.tables.append(Table(f"simulator-{stem}", validation, f"{a.name}: simulator error by case group"))
    if _targets(d):
        section.tables.append(Table(f"targets-{stem}", _targets(d), f"{a.name}: targets and whether each was met"))


def replay_section(ctx) -> Section:
    """Dispatch cost measured on GPUs (replay)"""
    attached = _attached(ctx, ("replay",), dry=False)
    if not attached:
        dry = _attached(ctx, ("replay",), dry=True)
        raise SkipSection(
            "no GPU replay attached"
            + (
                f" ({', '.join(a.name for a in dry)}: CPU dry runs, in the next section)"
                if dry
                else " (dodoco report ... --attach REPLAY.json)"
            )
        )
    section = Section("Dispatch cost measured on GPUs (replay)", tables=[_provenance(ctx, attached)])
    for a in attached:
        _replay_one(a, section)
    section.notes += [
        f"{r['file']}: {r['provenance']}"
        for r in provenance_rows(attached, {r.model for r in ctx.runs})
        if r["provenance"].startswith("trace from another model")
    ]
    return section


def dry_run_section(ctx) -> Section:
    """Replay dry runs on CPU (gloo): pipeline checks, not GPU measurements"""
    attached = _attached(ctx, ("replay",), dry=True)
    if not attached:
        raise SkipSection("no CPU dry-run replay attached")
    section = Section(
        "Replay dry runs on CPU (gloo): pipeline checks, not GPU measurements",
        html="<p>These replays ran with <code>--backend gloo</code> on CPU: they check that the "
        "routing, the cases and the dispatchers run end to end. Their times are CPU wall-clock "
        "of small defaults, not dispatch cost on GPUs; no link floor applies and no ratio to one "
        "is shown. Rerun on GPUs (without --backend gloo) for measurements.</p>",
        tables=[_provenance(ctx, attached)],
    )
    cols = [c for c in _SUMMARY if c not in ("floor_ms", "vs_floor", "busbw_GBps")]
    for a in attached:
        rows = [{k: v for k, v in r.items() if k not in ("floor_ms", "vs_floor")} for r in a.summary]
        section.tables.append(
            Table(
                f"dry-run-{a.path.stem}",
                rows,
                f"{a.name}: CPU dry run, mean over cases per dispatcher and condition (not a GPU measurement)",
                [c for c in cols if any(c in r for r in rows)],
            )
        )
        section.notes += _caveats(a)
    return section


#: Row fields whose labels say where a predicted dispatch time comes from (besides ``dispatch_label`` and a
#: ``provenance`` dict's "dispatch").
_DISPATCH_TERMS = ("nvlink", "nic", "dispatch_label")


def dispatch_nominal(row: dict) -> bool:
    """Whether a predicted dispatch time rests on a nominal (not measured, not calibrated) term."""
    labels = [row.get(k) for k in _DISPATCH_TERMS] + [(row.get("provenance") or {}).get("dispatch")]
    return any(str(x).startswith(("nominal", "none")) for x in labels if x)


def _sim_panels(rows: list[dict]) -> dict[str, list[dict]]:
    """Predicted rows -> panels per model, lines per condition, dispatcher and placement: never one line
    through two models' rows (a model whose runs repeat a condition gets a panel per run)."""
    lines: dict[tuple, dict] = {}
    for r in sorted(rows, key=lambda r: r["N"]):
        key = (
            r.get("model", "model not recorded"),
            r.get("run", ""),
            r["condition"],
            r.get("dispatcher", "nccl"),
            r.get("placement", "contiguous"),
        )
        ln = lines.setdefault(
            key,
            {
                "condition": key[2],
                "dispatcher": key[3],
                "placement": key[4],
                "N": [],
                "dispatch_ms": [],
                "balanced_ms": [],
                "nominal": [],
            },
        )
        ln["N"].append(r["N"])
        ln["nominal"].append(dispatch_nominal(r))
        ln["dispatch_ms"].append(r["dispatch_ms"])
        ln["balanced_ms"].append(r.get("balanced_ms", np.nan))
    seen: dict[tuple, set] = {}
    for m, run, *rest in lines:
        seen.setdefault((m, *rest), set()).add(run)
    split = {m for (m, *_), runs in seen.items() if len(runs) > 1}
    panels: dict[str, list] = {}
    for (m, run, *_), ln in lines.items():
        panels.setdefault(f"{m} ({'/'.join(Path(run).parts[-2:])})" if m in split else m, []).append(ln)
    return panels


def _layer_panels(rows: list[dict]) -> dict[str, list[dict]]:
    """Whole-layer rows (those with layer_ms) of the first dispatcher and placement, a panel per model and
    condition (at most 6), sorted by N."""
    rows = [r for r in rows if r.get("layer_ms") is not None]
    if not rows:
        return {}
    first = (rows[0].get("dispatcher"), rows[0].get("placement"))
    panels: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["N"]):
        if (r.get("dispatcher"), r.get("placement")) == first:
            run = "/".join(Path(r.get("run", "")).parts[-1:])
            panels.setdefault(f"{r.get('model', '?')} {run or r['condition']} ({first[0]})", []).append(r)
    return dict(list(panels.items())[:6])


def simulate_section(ctx) -> Section:
    """Predicted dispatch at larger EP (simulate)"""
    attached = _attached(ctx, ("simulate",))
    if not attached:
        raise SkipSection("no simulate results attached (dodoco simulate ... -o FILE, then --attach FILE)")
    section = Section("Predicted dispatch at larger EP (simulate)", tables=[_provenance(ctx, attached)])
    for a in attached:
        rows, stem = a.rows, a.path.stem
        uncal = a.calibration.startswith("none") or a.calibration == "not recorded"
        title = (a.data.get("title") if isinstance(a.data, dict) else None) or (
            "UNCALIBRATED prediction" if uncal else f"predicted dispatch, calibrated on {a.calibration}"
        )
        section.html += (
            f"<p><b>{esc(a.name)}</b>: {esc(title)}. Predictions of a model, not measurements; "
            f"calibration: {esc(a.calibration)}.</p>"
        )
        nominal = {r["N"] for r in rows if dispatch_nominal(r)}
        basis = (
            "Uncalibrated (nominal)"
            if uncal or nominal == {r["N"] for r in rows}
            else f"Calibrated up to N={max({r['N'] for r in rows} - nominal)}, with nominal terms at N="
            f"{','.join(map(str, sorted(nominal)))} (hollow)"
            if nominal
            else "Calibrated"
        )
        section.figures.append(
            Figure(
                f"simulate-{stem}",
                pd.predicted_vs_n(
                    _sim_panels(rows), f"{basis} prediction of dispatch time against EP degree N ({a.name})", ctx.style
                ),
                f"{a.name}: {title}; hollow markers rest on a nominal term (e.g. the NIC across nodes)",
            )
        )
        layer = _layer_panels(rows)
        if layer:
            section.figures.append(
                Figure(
                    f"simulate-layer-{stem}",
                    pd.layer_terms(
                        layer, f"Predicted MoE layer: dispatch + the busiest rank's experts + combine ({a.name})"
                    ),
                    f"{a.name}: the whole layer term by term (expert compute: {rows[0].get('compute_source', '?')}); "
                    "black tick: the balanced layer (the same tokens, every rank equal)",
                )
            )
        section.tables.append(Table(f"simulate-{stem}", rows, f"{a.name}: {title}"))
        section.notes += [f"{a.name}: {n}" for n in a.notes]
    section.notes += [
        f"{r['file']}: {r['provenance']}"
        for r in provenance_rows(attached, {r.model for r in ctx.runs})
        if r["provenance"].startswith("trace from another model")
    ]
    return section
