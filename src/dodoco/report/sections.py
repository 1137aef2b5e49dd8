"""The built-in report sections: provenance, the three verdicts with their figures, Gini matrix,
load heatmaps and Lorenz curves. EP-specific sections (mitigations, NeuSim, decode) live in
``dodoco.report.sections_ep``. Each section is ``(runs, ctx) -> Section`` (see report/build.py).
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.findings.verdict import Verdict
from dodoco.report import plots
from dodoco.report.build import Figure, Section, SkipSection, Table, register_section
from dodoco.report.html import esc, verdict_html

__all__ = ["aggregate_load", "bands_verdicts", "ep_verdict", "mock_real_verdict"]

_ORDER = {"mock": 0, "real": 1}


def _kind(run) -> str:
    return run.kind.value


def _label(run, runs) -> str:
    """model (with L<seq_len> when the runs hold several sequence lengths)."""
    several = len({r.seq_len for r in runs}) > 1
    return f"{run.model} L{run.seq_len}" if several else run.model


def aggregate_load(ctx, run) -> np.ndarray:
    """int64 [L, E]: assignments per layer and expert over all sequences of ``run`` (cached)."""
    return ctx.cached(("agg", str(run.path)), lambda: np.asarray(run.counts).sum(axis=0, dtype=np.int64))


def _window_note(ctx) -> list[str]:
    skipped = [str(r.path) for r in ctx.runs if r.granularity == "window"]
    if not skipped:
        return []
    return [f"per-step analysis skipped for runs holding one window aggregate: {', '.join(skipped)}"]


def _step_runs(ctx, what: str) -> list:
    runs = ctx.step_runs
    if not runs:
        raise SkipSection(f"{what} needs per-step counts; every run holds one window aggregate")
    return runs


# --- verdicts (cached in ctx.verdicts) --------------------------------------------------------------

def ep_verdict(ctx) -> Verdict:
    """EP invariance of every per-step run (placement contiguous unless the report scans none)."""
    from dodoco.findings.ep_invariance import ep_invariance

    if "ep_invariance" not in ctx.verdicts:
        runs = _step_runs(ctx, "the EP invariance verdict")
        o = ctx.options
        placement = "contiguous" if "contiguous" in o.placements else o.placements[0]
        ctx.verdicts["ep_invariance"] = ep_invariance([ctx.scan(r) for r in runs], placement=placement,
                                                      threshold=o.threshold)
    return ctx.verdicts["ep_invariance"]


def _merge(name: str, parts: list[Verdict], flag: str, other: str) -> Verdict:
    tables: dict[str, list] = {}
    for v in parts:
        for k, rows in v.tables.items():
            tables.setdefault(k, []).extend(rows)
    numbers = {"groups": len(parts), **{k: v for p in parts for k, v in p.numbers.items()}}
    if name == "mock_vs_real":
        ratios = [p.numbers["ratio_max"] for p in parts if np.isfinite(p.numbers["ratio_max"])]
        numbers["ratio_max"] = max(ratios) if ratios else float("nan")
        numbers["fabricated_pairs"] = sum(p.numbers["fabricated_pairs"] for p in parts)
        numbers["models_flagged"] = sorted({m for p in parts for m in p.numbers["models_flagged"]})
    verdict = flag if any(p.verdict == flag for p in parts) else other
    return Verdict(name, verdict, numbers, tables, [n for p in parts for n in p.notes])


def mock_real_verdict(ctx) -> Verdict:
    """Mock vs real per (model, seq_len) holding both a mock and a real-text run."""
    from dodoco.findings.mock_real import FABRICATED, mock_vs_real

    if "mock_vs_real" not in ctx.verdicts:
        runs = _step_runs(ctx, "mock vs real")
        groups: dict[tuple, list] = {}
        for r in runs:
            groups.setdefault((r.model, r.seq_len), []).append(r)
        ok = {k: g for k, g in groups.items() if {_kind(r) for r in g} == {"mock", "real"}}
        if not ok:
            raise SkipSection("mock vs real needs a mock and a real-text run of the same model and seq_len")
        o = ctx.options
        parts = [mock_vs_real([ctx.series(r) for r in g], n_boot=o.n_boot, seed=o.seed) for g in ok.values()]
        v = _merge("mock_vs_real", parts, FABRICATED, "not fabricated")
        v.notes += [f"{m} L{s}: no {'real-text' if _kind(g[0]) == 'mock' else 'mock'} run to compare with"
                    for (m, s), g in groups.items() if (m, s) not in ok]
        ctx.verdicts["mock_vs_real"] = v
    return ctx.verdicts["mock_vs_real"]


def bands_verdicts(ctx) -> dict[int, Verdict]:
    """Bands per sequence length among the per-step runs (models compared at one seq_len)."""
    from dodoco.findings.runs import bands_of_runs

    if "bands" not in ctx.cache:
        runs = _step_runs(ctx, "the bands verdict")
        o = ctx.options
        out = {}
        for L in sorted({r.seq_len for r in runs}):
            group = [ctx.series(r) for r in runs if r.seq_len == L]
            if any(s.kind == "real" for s in group):
                out[L] = bands_of_runs(None, series=group, batch=o.ref_batch, low=o.low, high=o.high, k=o.groups)
        if not out:
            raise SkipSection("the bands verdict needs real-text runs (prose, code, math, multilingual)")
        ctx.cache["bands"] = out
        for L, v in out.items():
            ctx.verdicts["bands" if len(out) == 1 else f"bands-L{L}"] = v
    return ctx.cache["bands"]


def _numbers_text(numbers: dict) -> str:
    """Headline numbers as text: floats to 4 significant digits, lists joined, dicts left out."""
    parts = []
    for k, v in numbers.items():
        if isinstance(v, float):
            parts.append(f"{k} {v:.4g}")
        elif isinstance(v, (list, tuple)):
            parts.append(f"{k} {', '.join(map(str, v)) or '-'}")
        elif not isinstance(v, dict):
            parts.append(f"{k} {v}")
    return "; ".join(parts)


def _verdict_box(title: str, v: Verdict, detail: str) -> str:
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in v.notes)
    return verdict_html(title, v.verdict, detail) + notes


# --- sections ---------------------------------------------------------------------------------------

@register_section
def provenance(runs, ctx) -> Section:
    """Runs and provenance"""
    rows = []
    for r in runs:
        m = r.manifest
        ver, d, routing = m.details.get("versions", {}), m.details, m.routing
        rows.append({"run": str(r.path), "model": r.model, "condition": r.condition, "kind": _kind(r),
                     "seq_len": r.seq_len, "sequences": int(r.counts.shape[0]), "L": routing.L,
                     "E": routing.E, "K": routing.K, "granularity": r.granularity.value,
                     "traces": r.has_tokens, "source": m.origin.value, "dtype": d.get("dtype", ""),
                     "device": d.get("device", ""), "dodoco": ver.get("dodoco", ""),
                     "git": (ver.get("git") or "")[:10], "torch": ver.get("torch", ""),
                     "transformers": ver.get("transformers", ""), "created": d.get("created", "")})
    html = ("<p>Every number below is computed from these run directories' counts. The manifests "
            "(model revision, condition provenance, checksums) are in each run's manifest.json.</p>")
    return Section("Runs and provenance", html, tables=[Table("runs", rows, "one row per run directory")],
                   notes=_window_note(ctx))


@register_section
def verdicts(runs, ctx) -> Section:
    """Verdicts"""
    parts, notes = [], []
    for title, fn in (("EP invariance", ep_verdict), ("Mock vs real", mock_real_verdict)):
        try:
            v = fn(ctx)
            parts.append(verdict_html(title, v.verdict, _numbers_text(v.numbers)))
        except (SkipSection, DodocoError) as exc:
            notes.append(f"{title}: {exc}")
    try:
        for L, v in bands_verdicts(ctx).items():
            parts.append(verdict_html(f"Bands (seq_len {L}, batch {v.numbers['batch']})", v.verdict,
                                      f"data-derived groups: {v.numbers['groups']}, "
                                      f"separated: {v.numbers['groups_separated']}"))
    except (SkipSection, DodocoError) as exc:
        notes.append(f"Bands: {exc}")
    return Section("Verdicts", "".join(parts), notes=notes)


def _scan_line(scan, metric: str, placement: str, batch: int, regime: str = "prefill") -> dict | None:
    """Model-level mean and 95% interval of ``metric`` against N from an EP scan table (None if absent)."""
    d = {c: scan.column(c).to_numpy(zero_copy_only=False)
         for c in ("batch", "ep", "placement", "layer", "metric", "statistic", "value", "regime")}
    keep = ((d["metric"] == metric) & (d["placement"] == placement) & (d["batch"] == batch)
            & (d["layer"] == -1) & (d["regime"] == regime))
    if not keep.any():
        return None
    eps = np.unique(d["ep"][keep])
    out = {"ep": eps}
    for stat, key in (("mean", "mean"), ("ci_lo", "lo"), ("ci_hi", "hi")):
        k = keep & (d["statistic"] == stat)
        v = np.full(eps.size, np.nan)
        v[np.searchsorted(eps, d["ep"][k])] = d["value"][k]
        out[key] = v
    return out


@register_section
def ep_invariance_section(runs, ctx) -> Section:
    """EP invariance"""
    v = ep_verdict(ctx)
    o = ctx.options
    mm_panels, rs_panels = {}, {}
    for r in ctx.step_runs:
        B = ctx.ep_batch(r)
        title = f"{_label(r, ctx.step_runs)} (B={B})"
        line = _scan_line(ctx.scan(r), "max_mean", v.numbers["placement"], B)
        if line:
            mm_panels.setdefault(title, []).append({**line, "label": r.condition, "kind": _kind(r)})
        for p in o.placements:
            line = _scan_line(ctx.scan(r), "receiver_skew", p, B)
            if line:
                rs_panels.setdefault(title, []).append({**line, "label": f"{r.condition} {p}", "kind": _kind(r)})
    figs = []
    if mm_panels:
        figs.append(Figure("ep-scan-max-mean", plots.ep_lines(mm_panels, "per-expert max/mean"),
                           "per-expert max/mean of each step against EP degree N at fixed B (mean over steps, "
                           "bootstrap 95% band); flat lines = the straggler is intrinsic"))
    if rs_panels:
        figs.append(Figure("ep-scan-receiver-skew", plots.ep_lines(rs_panels, "receiver skew"),
                           "per-rank receiver skew max_r R_r / mean_r R_r against N, per placement"))
    html = _verdict_box("EP invariance", v, f"threshold {o.threshold:.0%} relative change of the per-expert "
                        f"max/mean over N, placement {v.numbers['placement']}")
    return Section("EP invariance", html, figs, [
        Table("ep-invariance-summary", v.summary, "per run: relative change over N and verdict"),
        Table("ep-invariance-evidence", v.evidence, "per run and N: per-expert max/mean and receiver skew"),
        Table("ep-invariance-layers", v.tables["layers"], "per layer: relative change over N")])


@register_section
def mock_real_section(runs, ctx) -> Section:
    """Mock vs real: per-step Gini against batch size"""
    from dodoco.findings.mock_real import batch_trend

    step = _step_runs(ctx, "per-step Gini against batch size")
    o = ctx.options
    panels: dict[str, list] = {}
    for r in sorted(step, key=lambda r: (_ORDER[_kind(r)], r.condition)):
        t = ctx.cached(("trend", str(r.path)), lambda r=r: batch_trend(ctx.series(r).steps, o.n_boot, o.seed))
        slope = f"slope {t['slope']:+.3f}" if np.isfinite(t["slope"]) else "no slope"
        panels.setdefault(_label(r, step), []).append(
            {"batch": t["batches"], "mean": t["means"], "lo": t["mean_lo"], "hi": t["mean_hi"],
             "label": f"{r.condition} ({slope}{'*' if t['significant'] else ''})", "kind": _kind(r)})
    figs = [Figure("gini-vs-batch", plots.gini_vs_batch(panels),
                   "per-step Gini (mean over steps, bootstrap 95% band) against batch size; mock dashed, real "
                   "solid; slope per doubling of B, * = 95% interval excludes 0")]
    try:
        v = mock_real_verdict(ctx)
    except SkipSection as exc:
        return Section("Mock vs real", figures=figs, notes=[f"verdict skipped: {exc}"])
    html = _verdict_box("Mock vs real", v, f"largest Gini(mock)/Gini(real) {v.numbers['ratio_max']:.3g}; "
                        "a batch-size trend significant under mock only is fabricated by the mock")
    return Section("Mock vs real", html, figs, [
        Table("mock-vs-real-summary", v.summary, "per model, mock and real condition: slopes and verdict"),
        Table("mock-vs-real-ratio", v.tables["ratio"], "Gini(mock)/Gini(real) per batch size (bootstrap 95%)"),
        Table("mock-vs-real-trend", v.tables["trend"], "per run: slope of per-step Gini against log2 B"),
        Table("mock-vs-real-evidence", v.evidence, "per run and B: mean per-step Gini")])


@register_section
def bands_section(runs, ctx) -> Section:
    """Bands"""
    o = ctx.options
    html, figs, tables = [], [], []
    for L, v in bands_verdicts(ctx).items():
        models = [r["model"] for r in v.summary]
        extra = [r["model"] for r in v.evidence if r["model"] not in models]
        models += list(dict.fromkeys(extra))
        points = [(models.index(e["model"]), e["gini"], e["condition"], e["kind"]) for e in v.evidence]
        band_of = {r["model"]: r["band"] for r in v.summary}
        figs.append(Figure(f"bands-L{L}", plots.bands_chart(models, points, band_of, o.low, o.high),
                           f"per-step mean Gini at B={v.numbers['batch']}, seq_len {L}: o real text, x mock"))
        html.append(_verdict_box(f"Bands (seq_len {L})", v, f"thresholds {o.low} / {o.high}; data-derived "
                                 f"grouping: {v.numbers['groups']} groups, gap {v.numbers['group_gap']:.3g}, "
                                 f"separated: {v.numbers['groups_separated']}"))
        tables += [Table(f"bands-L{L}-summary", v.summary, f"per model (seq_len {L}): band and data group"),
                   Table(f"bands-L{L}-evidence", v.evidence, "the Gini values judged")]
    return Section("Bands", "".join(html), figs, tables)


@register_section
def gini_matrix_section(runs, ctx) -> Section:
    """Model x condition Gini"""
    from dodoco.metrics.imbalance import gini

    rows_l = list(dict.fromkeys(_label(r, runs) for r in runs))
    conds = [c for _, c in sorted({(_ORDER[_kind(r)], r.condition) for r in runs})]
    agg = np.full((len(rows_l), len(conds)), np.nan)
    table = []
    for r in runs:
        g = float(np.nanmean(gini(aggregate_load(ctx, r))))
        agg[rows_l.index(_label(r, runs)), conds.index(r.condition)] = g
        table.append({"model": r.model, "seq_len": r.seq_len, "condition": r.condition, "kind": _kind(r),
                      "gini_aggregate": g})
    figs = [Figure("gini-matrix", plots.gini_matrix(rows_l, conds, agg, "aggregate Gini (all sequences)"),
                   "model-level Gini of all sequences' counts summed (mean over MoE layers)")]
    step = ctx.step_runs
    if step:
        B = min(ctx.options.ref_batch, *(max(ctx.series(r).steps) for r in step))
        per = np.full_like(agg, np.nan)
        for r in step:
            s = ctx.series(r).steps
            b = max(x for x in s if x <= B)
            per[rows_l.index(_label(r, runs)), conds.index(r.condition)] = float(np.nanmean(s[b]))
            next(t for t in table if t["model"] == r.model and t["condition"] == r.condition
                 and t["seq_len"] == r.seq_len)[f"gini_step_B{B}"] = float(np.nanmean(s[b]))
        figs.append(Figure("gini-matrix-step", plots.gini_matrix(rows_l, conds, per, f"per-step Gini, B={B}"),
                           f"mean over steps of B={B} sequences of the per-step model-level Gini"))
    return Section("Model x condition Gini", "", figs, [Table("gini-matrix", table, "Gini per model and condition")])


def _selected(runs, ctx) -> list:
    want = ctx.options.heatmap_runs
    if want:
        chosen = [r for r in runs if str(r.path) in want or f"{r.model}/{r.condition}" in want]
        if not chosen:
            raise SkipSection(f"no run matches --heatmap {', '.join(want)}")
        return chosen
    return list(runs)[: ctx.options.max_heatmaps]


@register_section
def heatmap_section(runs, ctx) -> Section:
    """Per-layer x expert load"""
    chosen = _selected(runs, ctx)
    figs = [Figure(f"heatmap-{r.model}-{r.condition}-L{r.seq_len}",
                   plots.heatmap(aggregate_load(ctx, r), f"{r.model} / {r.condition} (L={r.seq_len})"),
                   f"load of each expert in each MoE layer over all sequences of {r.path.name}, relative to "
                   "the layer mean (1 = balanced)") for r in chosen]
    notes = [f"{len(runs) - len(chosen)} more runs not drawn (choose with --heatmap)"] if len(chosen) < len(runs) \
        else []
    return Section("Per-layer x expert load", figures=figs, notes=notes)


@register_section
def lorenz_section(runs, ctx) -> Section:
    """Lorenz curves"""
    from dodoco.metrics.imbalance import lorenz

    panels: dict[str, list] = {}
    for r in sorted(runs, key=lambda r: (_ORDER[_kind(r)], r.condition)):
        x, y = lorenz(aggregate_load(ctx, r))  # y [L, E+1]
        panels.setdefault(_label(r, runs), []).append((r.condition, _kind(r), x, np.nanmean(y, axis=0)))
    return Section("Lorenz curves", figures=[Figure("lorenz", plots.lorenz_curves(panels),
                   "Lorenz curve of all sequences' counts, averaged over MoE layers (area to the diagonal = "
                   "Gini / 2); mock dashed")])
