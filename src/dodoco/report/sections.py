"""The report's first sections: provenance, the verdicts in sentences, and the evidence of each
verdict (EP invariance, mock vs real, bands) with its figures. Each is ``(ctx) -> Section``
(report/build.py); the numbers come from ``ctx.findings`` (``dodoco.findings.judge``)."""

from __future__ import annotations

from dodoco.errors import DodocoError
from dodoco.report import plots
from dodoco.report.html import esc, verdict_html
from dodoco.report.section import Figure, Section, SkipSection, Table

__all__ = ["bands_section", "ep_invariance_section", "mock_real_section", "provenance", "verdicts"]

_TITLES = {"ep_invariance": "EP invariance", "mock_vs_real": "Mock vs real", "bands": "Bands"}


def _K(run):
    try:
        return run.K
    except DodocoError:
        return None  # shown as unknown; the sections that need K say so


def provenance(ctx) -> Section:
    """Runs and provenance"""
    rows = []
    for r in ctx.sorted_runs():
        m = r.manifest
        d, ver = m.details, m.details.get("versions", {})
        rows.append(
            {
                "run": str(r.path),
                "model": r.model,
                "revision": m.model.revision,
                "condition": r.condition,
                "kind": ctx.kind(r),
                "seq_len": r.seq_len,
                "units": int(r.counts.shape[0]),
                "L": m.routing.L,
                "E": m.routing.E,
                "K": _K(r),
                "granularity": r.granularity.value,
                "traces": r.has_tokens,
                "origin": m.origin.value,
                "dtype": d.get("dtype"),
                "device": d.get("device"),
                "dodoco": ver.get("dodoco"),
                "git": _short_git(ver.get("git")),
                "torch": ver.get("torch"),
                "transformers": ver.get("transformers"),
                "created": d.get("created"),
            }
        )
    html = (
        "<p>Every number in this report is computed from these run directories' counts (and, in the "
        "dispatch sections, from the attached result files named there). The manifests (model revision, "
        "condition provenance, checksums) are in each run's manifest.json. A unit is a sequence "
        "(or a pass, for imported per-pass dumps; one window for a window aggregate, whose results rest on "
        "one step and say so).</p>"
    )
    return Section("Runs and provenance", html, tables=[Table("runs", rows, "one row per run directory")])


def verdicts(ctx) -> Section:
    """Verdicts"""
    from dodoco.findings.judge import FINDINGS

    f, parts = ctx.findings, []
    for name in FINDINGS:
        v = f.verdicts.get(name)
        if v is None:
            parts.append(verdict_html(_TITLES[name], "not judged", [f.skipped[name]]))
            continue
        head = v.sentences[: len(v.sentences) - (len(v.summary) if name != "bands" else 0)]
        parts.append(verdict_html(_TITLES[name], v.verdict, head))
    html = (
        "<p>What the runs show, with 95% bootstrap intervals over steps in brackets; values resting on two "
        "steps or fewer have no interval and are not judged on. Per-run sentences and the evidence are in "
        "the sections below; <code>findings.json</code> holds every verdict, table and sentence.</p>"
    )
    return Section("Verdicts", html + "".join(parts))


def _line(curve, condition, placement=None, kind=None) -> dict:
    return {
        "condition": condition,
        "placement": placement,
        "kind": kind,
        "ep": curve.ep,
        "mean": curve.mean,
        "lo": curve.lo,
        "hi": curve.hi,
        "steps": curve.steps,
    }


def _panel(ctx, run, B) -> str:
    return f"{ctx.label(run)}, B={B}"


def _ep_figures(ctx, mm: dict, rs: dict, part: str) -> list:
    """The EP-invariance figures: per-expert max/mean and per-rank receiver skew against N."""
    ylabel, title = (
        "per-expert max/mean load (x mean)",
        ("Per-expert straggler (max/mean expert load per step) against EP degree N, fixed per-rank batch B"),
    )
    caption = (
        f"per-step max_e c_e / mean_e c_e, mean over MoE layers and over steps (band: bootstrap 95% "
        f"interval), evaluated on the {part}; flat lines = the straggler is intrinsic to the routing"
    )
    skew_title = "Per-rank receiver skew against EP degree N, per placement, fixed per-rank batch B"
    skew_caption = (
        f"max_r R_r / mean_r R_r of each step's rank loads, mean over layers and steps, for every "
        f"placement scanned (line style), evaluated on the {part}"
    )
    return [
        Figure("ep-scan-max-mean", plots.ep_lines(mm, ylabel, title, ctx.style), caption),
        Figure(
            "ep-scan-receiver-skew",
            plots.ep_lines(rs, "receiver skew (max/mean rank load)", skew_title, ctx.style),
            skew_caption,
        ),
    ]


def verdict_tables(v, stem: str, parts: tuple, **rows) -> list:
    """A verdict's tables ``{stem}-{key}`` with their captions: parts ((key, caption), ...), each
    v.tables[key] unless ``rows`` gives that key other rows (a sorted copy)."""
    return [Table(f"{stem}-{key}", rows.get(key, v.tables[key]), cap) for key, cap in parts]


def _ep_tables(v, base: str) -> list:
    """The EP-invariance tables: summary, evidence (sorted by N within B), removal, layers."""
    ev = sorted(v.evidence, key=lambda e: (e["model"], e["condition"], e["batch"], e["ep"]))
    return verdict_tables(v, "ep-invariance", (
        ("summary", "per run: relative change of the per-expert max/mean over N"),
        ("evidence", "per run and N (sorted by N within B): per-expert max/mean and the receiver skew of each "
                     "placement, 95% intervals, steps"),
        ("removal", f"share of the {base} receiver skew's excess over 1 each other placement removes, per N"),
        ("layers", "per MoE layer: relative change of max/mean over N"),
    ), evidence=ev)  # fmt: skip


def ep_invariance_section(ctx) -> Section:
    """EP invariance"""
    v = ctx.verdict("ep_invariance")
    base = v.numbers["baseline"]
    mm, rs = {}, {}
    for r in ctx.sorted_runs():
        s = ctx.scan(r)
        if s is None:
            continue
        mm.setdefault(_panel(ctx, r, s.batch), []).append(
            _line(s.curves[("max_mean", base)], r.condition, kind=ctx.kind(r))
        )
        for p in s.placements():
            rs.setdefault(_panel(ctx, r, s.batch), []).append(
                _line(s.curves[("receiver_skew", p)], r.condition, p, ctx.kind(r))
            )
    held = any(s.part == "held-out" for s in ctx.findings.scans.values())
    part = "held-out half of the units" if held else "all units"
    html = verdict_html("EP invariance", v.verdict, v.sentences, v.notes)
    return Section("EP invariance", html, _ep_figures(ctx, mm, rs, part), _ep_tables(v, base))


def mock_real_section(ctx) -> Section:
    """Mock vs real"""
    panels: dict[str, list] = {}
    for r in ctx.sorted_runs():
        t = ctx.trend(r)
        panels.setdefault(ctx.label(r), []).append(
            {
                "condition": r.condition,
                "kind": ctx.kind(r),
                "batch": t["batches"],
                "mean": t["means"],
                "lo": t["mean_lo"],
                "hi": t["mean_hi"],
                "steps": t["n"],
            }
        )
    figs = [
        Figure(
            "gini-vs-batch",
            plots.gini_vs_batch(
                panels, ctx.style, "Per-step Gini against batch size B (N = 1), per model and condition"
            ),
            "mean over steps of the model-level per-step Gini (band: bootstrap 95% interval); mock conditions in greys; "
            "the slope of each line against log2 B and whether it is significant are in the trend table",
        )
    ]
    try:
        v = ctx.verdict("mock_vs_real")
    except SkipSection as exc:
        return Section("Mock vs real", figures=figs, notes=[f"verdict not judged: {exc}"])
    html = verdict_html("Mock vs real", v.verdict, v.sentences, v.notes)
    tables = verdict_tables(v, "mock-vs-real", (
        ("summary", "per model, mock and real condition: slopes, ratio, verdict"),
        ("ratio", "Gini(mock)/Gini(real) per batch size (bootstrap 95%)"),
        ("trend", "per run: slope of per-step Gini against log2 B"),
        ("evidence", "per run and B: mean per-step Gini, interval, steps"),
    ))  # fmt: skip
    return Section("Mock vs real", html, figs, tables)


def bands_section(ctx) -> Section:
    """Bands"""
    v = ctx.verdict("bands")
    n, figs = v.numbers, []
    for g in v.tables["grouping"]:
        L = g["seq_len"]
        band = {r["model"]: r["band"] for r in v.summary if r["seq_len"] == L}
        points = [
            {
                "model": f"{e['model']} ({band.get(e['model'], 'no band')})",
                "gini": e["gini"],
                "lo": e["gini_lo"],
                "hi": e["gini_hi"],
                "condition": e["condition"],
                "kind": e["kind"],
            }
            for e in v.evidence
            if e["seq_len"] == L
        ]
        models = list(dict.fromkeys(p["model"] for p in points))
        figs.append(
            Figure(
                f"bands-seq-len-{L}",
                plots.bands_chart(
                    models,
                    points,
                    n["low"],
                    n["high"],
                    ctx.style,
                    f"Per-step Gini per model and condition at B={n['batch']}, seq_len {L}, with the band thresholds",
                ),
                "real-text conditions (circles) decide the band, mock (crosses) is shown for comparison; bars: "
                "bootstrap 95% intervals over steps",
            )
        )
    html = verdict_html("Bands", v.verdict, v.sentences, v.notes)
    html += (
        f"<p>Thresholds: data-resilient when the {esc(n['resilient_condition'])} Gini is <= {n['low']}, "
        f"persistently concentrated when every real-text Gini is >= {n['high']} (the paper's); "
        "certainty from the intervals of the deciding values.</p>"
    )
    tables = verdict_tables(v, "bands", (
        ("summary", "per model and seq_len: band, deciding value, certainty, data group"),
        ("grouping", "data-derived grouping per seq_len"),
        ("evidence", "the Gini values judged"),
    ))  # fmt: skip
    return Section("Bands", html, figs, tables)


def _short_git(git: str | None) -> str | None:
    """A commit shortened to 10 characters, keeping the "+dirty" mark of a run made from changed files."""
    if not git:
        return None
    return git[:10] + ("+dirty" if git.endswith("+dirty") else "")
