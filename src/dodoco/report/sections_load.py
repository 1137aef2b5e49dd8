"""Report sections on where the load goes: the model x condition Gini matrices, per-layer x expert
heatmaps and Lorenz curves, from each run's aggregate load and per-step Gini. Each is
``(ctx) -> Section`` (report/build.py)."""

from __future__ import annotations

import numpy as np

from dodoco.report import plots
from dodoco.report.section import Figure, Section, SkipSection, Table

__all__ = ["gini_matrix_section", "heatmap_section", "lorenz_section"]


def gini_matrix_section(ctx) -> Section:
    """Model x condition Gini"""
    from dodoco.findings.analyses import load_curves

    runs = ctx.sorted_runs()
    rows_l = list(dict.fromkeys(ctx.label(r) for r in runs))
    conds = list(dict.fromkeys(r.condition for r in sorted(runs, key=lambda r: (ctx.kind(r) != "mock", r.condition))))
    agg, per = np.full((len(rows_l), len(conds)), np.nan), np.full((len(rows_l), len(conds)), np.nan)
    table, batches = [], set()
    for r in runs:
        i, j = rows_l.index(ctx.label(r)), conds.index(r.condition)
        agg[i, j] = load_curves(ctx.aggregate(r))["gini"]
        at = ctx.findings.gini_at(r, ctx.options.ref_batch)
        row = {
            "model": r.model,
            "seq_len": r.seq_len,
            "condition": r.condition,
            "kind": ctx.kind(r),
            "gini_all_units": agg[i, j],
        }
        if at is not None:
            per[i, j] = at["gini"]
            batches.add(at["batch"])
            row.update(
                {
                    "batch": at["batch"],
                    "steps": at["steps"],
                    "gini_step": at["gini"],
                    "gini_step_lo": at["gini_lo"],
                    "gini_step_hi": at["gini_hi"],
                }
            )
        table.append(row)
    B = "/".join(str(b) for b in sorted(batches)) or "-"
    panels = {"all units summed (aggregate)": agg, f"per step of B={B} sequences (mean over steps)": per}
    fig = Figure(
        "gini-matrix",
        plots.gini_matrices(rows_l, conds, panels, "Model-level Gini (mean over MoE layers) per model and condition"),
        "left: the Gini of all units' counts summed; right: the mean over steps of the per-step Gini at "
        f"the reference batch (B={B}); one colour scale for both; grey: no run",
    )
    return Section("Model x condition Gini", "", [fig], [Table("gini-matrix", table, "Gini per model and condition")])


def _selected(ctx) -> list:
    want = ctx.options.heatmap
    runs = ctx.sorted_runs()
    if want:
        chosen = [r for r in runs if str(r.path) in want or f"{r.model}/{r.condition}" in want]
        if not chosen:
            raise SkipSection(f"no run matches --heatmap {', '.join(want)}")
        return chosen
    models = list(dict.fromkeys(ctx.label(r) for r in runs))[: ctx.options.max_heatmaps]
    return [r for r in runs if ctx.label(r) in models]


def _relative(load) -> np.ndarray:
    x = np.asarray(load, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / x.mean(axis=1, keepdims=True)


def heatmap_section(ctx) -> Section:
    """Per-layer x expert load"""
    chosen = _selected(ctx)
    rel = np.concatenate([_relative(ctx.aggregate(r)).ravel() for r in chosen])
    vmax = max(1.0, float(np.nanpercentile(rel, 99.5))) if np.isfinite(rel).any() else 1.0
    by_model: dict[str, dict] = {}
    for r in chosen:
        by_model.setdefault(ctx.label(r), {})[r.condition] = ctx.aggregate(r)
    figs = [
        Figure(
            f"heatmap-{label}",
            plots.heatmaps(panels, vmax, f"{label}: load of each expert in each MoE layer / the layer mean, all units"),
            f"{label}: assignments per expert and MoE layer over all units, relative to the layer mean (1 = "
            f"balanced); one colour scale 0..{vmax:.2f} (the 99.5th percentile over every heatmap) in every "
            "heatmap of this report",
        )
        for label, panels in by_model.items()
    ]
    notes = (
        [
            f"{len(ctx.runs) - len(chosen)} more runs not drawn (at most {ctx.options.max_heatmaps} models by "
            "default; choose runs with --heatmap)"
        ]
        if len(chosen) < len(ctx.runs)
        else []
    )
    return Section("Per-layer x expert load", figures=figs, notes=notes)


def lorenz_section(ctx) -> Section:
    """Lorenz curves"""
    from dodoco.findings.analyses import load_curves

    panels: dict[str, list] = {}
    for r in ctx.sorted_runs():
        c = load_curves(ctx.aggregate(r))  # Lorenz curve averaged over layers
        panels.setdefault(ctx.label(r), []).append((r.condition, c["x"], c["y"]))
    fig = Figure(
        "lorenz",
        plots.lorenz_curves(panels, ctx.style, "Lorenz curves of expert load, per model"),
        "share of assignments held by the least-loaded share of experts, all units summed, averaged over "
        "MoE layers; the area between a curve and the diagonal is Gini / 2",
    )
    return Section("Lorenz curves", figures=[fig])
