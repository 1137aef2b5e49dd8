"""Report sections beyond counts: co-activation, cross-layer affinity, placements fitted on token
traces (held out) and rebalancing over time. Each is ``(ctx) -> Section`` and draws what one call
of ``dodoco.findings.analyses.traces`` returns (computed once per report, cached on ctx).
docs/beyond-counts.md defines every number.
"""

from __future__ import annotations

import numpy as np

from dodoco.report import plots
from dodoco.report.section import Figure, Section, SkipSection, Table

__all__ = ["affinity_section", "coactivation_section", "rebalance_section", "trace_placements_section"]

MAX_PANELS = 6
#: line style and the rows each trace placement is judged on
_PLACEMENTS = {"coact": ("dedup", "coact: deduplicated rows saved"),
               "affinity": ("forward", "affinity: forwarded rows saved")}


def _summary(ctx):
    from dodoco.findings.analyses import traces

    o = ctx.options
    return ctx.cached(("trace_summary",), lambda: traces(ctx.runs, getattr(o, "seed", 0), getattr(o, "n_boot", 1000)))


def _round(rows, digits: int = 4) -> list[dict]:
    return [{k: (round(v, digits) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def _panels(d: dict) -> dict:
    return dict(list(d.items())[:MAX_PANELS])


def _matrices(panels: dict, title: str, cbar: str, cmap: str, vmin: float, vmax: float,
              xlabel: str, ylabel: str) -> bytes:
    """One heatmap per panel {title: matrix[E, E]} on a shared colour scale."""
    fig, axes = plots.grid(len(panels), width=3.4, height=3.1)
    im = None
    for ax, (name, m) in zip(axes, panels.items()):
        im = ax.imshow(m, interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel, xticks=[], yticks=[])
    fig.colorbar(im, ax=list(axes), label=cbar, shrink=0.9)
    fig.suptitle(title)
    return plots.png(fig)


def coactivation_section(ctx) -> Section:
    """Expert co-activation within a layer (token traces)."""
    s = _summary(ctx)
    if not s.coactivation:
        raise SkipSection("no run has token traces: observe with --traces")
    heat = {f"{k} (layer {l})": np.log2(np.clip(np.nan_to_num(m, nan=1.0), 1 / 8, 8))
            for k, (m, l) in _panels(s.heatmaps).items()}
    fig = _matrices(heat, "Co-activation lift of expert pairs, most concentrated layer, experts in "
                    "clustering order", "log2(observed / expected pairs); 0 = independent",
                    "RdBu_r", -3, 3, "expert (cluster order)", "expert (cluster order)")
    pairs = [{"run": k, "rank": i + 1, "pair": f"{a}-{b}", "co_selections": n, "lift": li}
             for k, ps in s.pairs.items() for i, (a, b, n, li) in enumerate(ps)]
    cols = ["model", "condition", "layer", "pairs", "top_share", "top_share_indep", "tv",
            "tv_noise", "max_lift", "lift_p99"]
    return Section(
        "Expert co-activation within a layer (token traces)",
        html="<p>Pairs of experts chosen by the same token, against the pairs expected if the "
             "experts were paired at random with the observed per-expert loads (exact for uniform "
             "routing). top_share: share of co-selections in the top 5% of pairs (top_share_indep: "
             "the same under independence); tv: distance from independence (tv_noise: what "
             "sampling alone gives).</p>",
        figures=[Figure("coactivation-lift", fig, "log2 lift per expert pair; block structure = "
                                                  "groups of experts chosen together")],
        tables=[Table("coactivation", _round(s.coactivation), "Co-activation per run and MoE layer",
                      cols),
                Table("coactivation-top-pairs", _round(pairs), "Most co-selected pairs of the "
                      "drawn layer", ["run", "rank", "pair", "co_selections", "lift"])],
        notes=[n for n in s.notes if "traces" in n])


def _nmi_figure(ctx, rows) -> bytes:
    by_model: dict = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    panels = _panels(by_model)
    fig, axes = plots.grid(len(panels))
    conds = []
    for ax, (model, rs) in zip(axes, panels.items()):
        for cond in dict.fromkeys(r["condition"] for r in rs):
            mine = [r for r in rs if r["condition"] == cond]
            x = [r["layer"] for r in mine]
            plots.line(ax, x, [r["nmi"] for r in mine], color=ctx.style.color(cond))
            ax.plot(x, [r.get("nmi_shuffled", np.nan) for r in mine], color=ctx.style.color(cond),
                    linestyle=":", linewidth=1.0)
            conds.append(cond)
        ax.set(title=model, xlabel="MoE layer l (pair l -> l+1)",
               ylabel="normalised mutual information I/H")
        ax.set_xticks(sorted({r["layer"] for r in rs}))
        ax.grid(alpha=0.25)
    fig.suptitle("Cross-layer affinity: information the layer-l expert gives about layer l+1")
    plots.legend(fig, ctx.style, conds, (), [("token-shuffled control", {"color": "0.3",
                                                                          "linestyle": ":"})])
    return plots.png(fig)


def affinity_section(ctx) -> Section:
    """Cross-layer expert affinity (token traces)."""
    s = _summary(ctx)
    if not s.affinity:
        raise SkipSection("no run has token traces with two or more MoE layers")
    trans = {f"{k} (layers {l}->{l + 1})": m for k, (m, l) in _panels(s.transitions).items()}
    vmax = max(float(np.percentile(m, 99.5)) for m in trans.values()) or 1.0
    cols = ["model", "condition", "layer", "next", "mi", "mi_shuffled", "h_next", "h_cond", "nmi",
            "nmi_shuffled", "top1", "top1_indep", "top20", "top20_indep"]
    return Section(
        "Cross-layer expert affinity (token traces)",
        html="<p>For each token, its experts in layer l against its experts in layer l+1 (all K x "
             "K pairs). I: mutual information in bits; nmi = I / H(next layer); top1: chance that "
             "the most likely next expert given the current one is chosen (top1_indep: without "
             "knowing it); top20: probability mass of the 20% most likely next experts. The "
             "shuffled control pairs layer l with another token's layer l+1.</p>",
        figures=[Figure("affinity-nmi", _nmi_figure(ctx, s.affinity),
                        "nmi per layer pair; dotted: the token-shuffled control"),
                 Figure("affinity-conditional", _matrices(
                     trans, "Next-layer expert given the current expert, strongest layer pair",
                     "p(expert b in layer l+1 | expert a in layer l)", "magma", 0.0, vmax,
                     "layer l+1 expert (cluster order)", "layer l expert (cluster order)"),
                     "rows: current expert; columns: next expert")],
        tables=[Table("affinity", _round(s.affinity), "Affinity per run and layer pair", cols)])


def _saving_figure(ctx, rows) -> bytes:
    by_panel: dict = {}
    for r in rows:
        if r["placement"] in _PLACEMENTS:
            by_panel.setdefault(f"{r['model']}, {r['regime']}", []).append(r)
    panels = _panels(by_panel)
    fig, axes = plots.grid(len(panels))
    conds = []
    for ax, (name, rs) in zip(axes, panels.items()):
        for key in dict.fromkeys((r["condition"], r["placement"]) for r in rs):
            mine = sorted((r for r in rs if (r["condition"], r["placement"]) == key),
                          key=lambda r: r["ep"])
            metric, _ = _PLACEMENTS[key[1]]
            dash = ctx.style.dash(key[1])
            plots.line(ax, [r["ep"] for r in mine], [100 * r[f"{metric}_saving"] for r in mine],
                       [100 * r[f"{metric}_saving_lo"] for r in mine],
                       [100 * r[f"{metric}_saving_hi"] for r in mine], [r["steps"] for r in mine],
                       color=ctx.style.color(key[0]), dash=dash)
            conds.append(key[0])
        plots.int_ticks(ax, [r["ep"] for r in rs])
        ax.axhline(0, color="0.5", linewidth=0.8)
        ax.set(title=name, xlabel="EP degree N (ranks)", ylabel="rows saved vs EPLB (%)")
        ax.grid(alpha=0.25)
    fig.suptitle("Dispatch rows saved over EPLB, held out: coact (deduplicated), affinity "
                 "(forwarded)")
    plots.legend(fig, ctx.style, conds, (), [(label, {"color": "0.25", "linestyle": ctx.style.dash(name)})
                                            for name, (_, label) in _PLACEMENTS.items()])
    return plots.png(fig)


def trace_placements_section(ctx) -> Section:
    """Placements fitted on token traces, held out."""
    s = _summary(ctx)
    if not s.placements:
        raise SkipSection("no run has token traces to fit co-activation or affinity placements on")
    cols = ["model", "condition", "regime", "ep", "placement", "steps", "dedup_saving",
            "dedup_saving_lo", "dedup_saving_hi", "forward_saving", "forward_saving_lo",
            "forward_saving_hi", "receiver_skew", "dedup_recv_skew", "max_mean", "dedup_rows",
            "forward_rows"]
    return Section(
        "Placements fitted on token traces (held out)",
        html="<p>Fitted on half of each run's sequences, evaluated on the other half in steps of "
             "N sequences (B = 1). dedup: distinct (token, remote rank) rows, what DeepEP sends; "
             "forward: rows if tokens were forwarded from the ranks of their previous layer's "
             "experts (the ExFlow dispatch, a model). Savings are per step against EPLB with 95% "
             "bootstrap intervals over steps; coact and affinity keep rank loads within 10% of "
             "EPLB's on the fit data (the skews here are held out).</p>",
        figures=[Figure("trace-placements", _saving_figure(ctx, s.placements),
                        "bands: 95% bootstrap interval over held-out steps")],
        tables=[Table("trace-placements", _round(s.placements), "Every placement per run, regime "
                      "and EP degree", cols)],
        notes=[n for n in s.notes if "skipped" in n or "placements left out" in n])


def _rebalance_figure(rows) -> bytes:
    by_run: dict = {}
    for r in rows:
        by_run.setdefault(f"{r['model']} / {r['condition']}", []).append(r)
    panels = _panels(by_run)
    fig, axes = plots.grid(len(panels))
    ws = sorted({r["w"] for r in rows if isinstance(r["k"], int)})
    shades = {w: str(0.75 - 0.6 * i / max(1, len(ws) - 1)) for i, w in enumerate(ws)}
    for ax, (name, rs) in zip(axes, panels.items()):
        for w in ws:
            mine = sorted((r for r in rs if isinstance(r["k"], int) and r["w"] == w), key=lambda r: r["k"])
            ax.plot([r["k"] for r in mine], [r["mean_skew"] for r in mine], marker="o", markersize=3,
                    color=shades[w])
        for r in rs:
            if r["k"] in ("never", "oracle"):
                ax.axhline(r["mean_skew"], color="C3" if r["k"] == "never" else "C2",
                           linestyle="--", linewidth=1)
        plots.int_ticks(ax, [r["k"] for r in rs if isinstance(r["k"], int)])
        ax.set(title=name, xlabel="refit interval k (steps)", ylabel="mean receiver skew (max/mean)")
        ax.grid(alpha=0.25)
    fig.suptitle("EPLB refitted every k steps on the last w: receiver skew between refits")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=shades[w], marker="o", label=f"window w = {w}") for w in ws]
    handles += [Line2D([], [], color="C3", linestyle="--", label="never refitted"),
                Line2D([], [], color="C2", linestyle="--", label="each step fitted on itself")]
    from dodoco.report.style import LEGEND

    fig.legend(handles=handles, **LEGEND)
    return plots.png(fig)


def rebalance_section(ctx) -> Section:
    """Rebalancing over time (EPLB refit interval and window)."""
    s = _summary(ctx)
    if not s.rebalance:
        raise SkipSection("no run has enough steps in arrival order for the rebalancing sweep")
    cols = ["model", "condition", "ep", "k", "w", "refits", "mean_skew", "p95_skew",
            "moved_per_refit", "bytes_per_refit", "stale_s", "migrate_s", "total_s", "shape_from"]
    return Section(
        "Rebalancing over time: refit interval and window",
        html="<p>Units in the order they were recorded, steps of N = 8 units; EPLB refitted every k "
             "steps on the last w and evaluated on the steps after every policy's first fit. "
             "Experts moved count the replicas each rank must newly hold after relabelling ranks "
             "to keep the most in place. The best (k, w) minimises a nominal time: excess rows "
             "of the busiest rank over the dispatch bandwidth plus the busiest rank's incoming "
             "expert bytes over the migration bandwidth.</p>",
        figures=[Figure("rebalance", _rebalance_figure(s.rebalance),
                        "lines: one window w each; dashed: never refitted, and the in-sample bound")],
        tables=[Table("rebalance", _round(s.rebalance), "Every (k, w) per run (nominal bytes and "
                      "seconds)", cols),
                Table("rebalance-best", _round(s.rebalance_best), "Best (k, w) per migration "
                      "bandwidth (nominal)")],
        notes=[n for n in s.notes if "nominal" in n or "rebalance" in n])
