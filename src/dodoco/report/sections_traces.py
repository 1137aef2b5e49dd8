"""Report sections beyond counts: co-activation, cross-layer affinity, placements fitted on token
traces (held out) and rebalancing over time. Each is ``(ctx) -> Section`` and draws what one call
of ``dodoco.findings.analyses.traces`` returns (computed once per report, cached on ctx).
docs/beyond-counts.md defines every number.
"""

from __future__ import annotations

import numpy as np

from dodoco.report import plots
from dodoco.report.section import Figure, Section, SkipSection, Table
from dodoco.report.style import colorbar, legend, suptitle

__all__ = ["affinity_section", "coactivation_section", "rebalance_section", "trace_placements_section"]

MAX_PANELS = 6
#: line style and the rows each trace placement is judged on
_PLACEMENTS = {
    "coact": ("dedup", "coact: deduplicated rows saved"),
    "affinity": ("forward", "affinity: forwarded rows saved"),
}


# the columns of each section's table
TRACE_PLACEMENTS_COLS = (
    "model condition regime ep placement steps dedup_saving dedup_saving_lo dedup_saving_hi "
    "forward_saving forward_saving_lo forward_saving_hi receiver_skew dedup_recv_skew max_mean dedup_rows "
    "forward_rows"
).split()
REBALANCE_COLS = (
    "model condition ep k w refits same_as mean_skew p95_skew moved_per_refit bytes_per_refit stale_s "
    "migrate_s total_s hidden intermediate shape_from migrate_gbps dispatch_gbps seconds_label"
).split()


# the prose above each section's figures (HTML)
COACTIVATION_HTML = """\
<p>Pairs of experts chosen by the same token, against the pairs expected if the experts were paired at random
with the observed per-expert loads (exact for uniform routing). top_share: share of co-selections in the top
5% of pairs (top_share_indep: the same under independence); tv: distance from independence (tv_noise: what
sampling alone gives).</p>"""
AFFINITY_HTML = """\
<p>For each token, its experts in layer l against its experts in layer l+1 (all K x K pairs). I: mutual
information in bits; uncertainty_coef = I / H(next layer), Theil's uncertainty coefficient (the share of the
next layer's entropy the current expert removes; not the symmetric normalised MI); top1: chance that the most
likely next expert given the current one is among the token's K experts of layer l+1 (top1_indep: the most
popular next expert, without knowing the current one); top20: share of a token's next-layer experts among the
20% most likely given the current one. The shuffled control pairs layer l with another token's layer l+1.</p>"""
PLACEMENTS_HTML = """\
<p>Fitted on half of each run's sequences, evaluated on the other half in steps of N sequences (B = 1). dedup:
distinct (token, remote rank) rows, what DeepEP sends; forward: rows if tokens were forwarded from the ranks
of their previous layer's experts (the ExFlow dispatch, a model). Savings are per step against EPLB with 95%
bootstrap intervals over steps; coact and affinity keep rank loads within 10% of EPLB's on the fit data (the
skews here are held out).</p>"""
REBALANCE_HTML = """\
<p>Units in the order they were recorded, steps of N = 8 units; EPLB refitted every k steps on the last w and
evaluated on the steps after every policy's first fit. Experts moved count the replicas each rank must newly
hold after relabelling ranks to keep the most in place (ties: the smallest busiest incoming). The best (k, w)
minimises a nominal time, a cost model and not a measurement: excess rows of the busiest rank over the
dispatch bandwidth plus, layer after layer, the busiest rank's incoming expert bytes over the migration
bandwidth; a policy that refits nowhere in the evaluated steps is the same as never refitting and the best
says never.</p>"""


def _summary(ctx):
    from dodoco.findings.analyses import traces

    o = ctx.options
    return ctx.cached(("trace_summary",), lambda: traces(ctx.runs, getattr(o, "seed", 0), getattr(o, "n_boot", 1000)))


def _summary_with(ctx, part: str, why: str):
    """The cached summary, or SkipSection(why) where its ``part`` (coactivation, affinity, placements,
    rebalance) is empty."""
    s = _summary(ctx)
    if not getattr(s, part):
        raise SkipSection(why)
    return s


def _round(rows, digits: int = 6) -> list[dict]:
    """Floats to ``digits`` significant digits (never to 0: a nominal 2e-7 s stays 2e-07)."""
    return [{k: (float(f"{v:.{digits}g}") if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def _panels(d: dict) -> dict:
    return dict(list(d.items())[:MAX_PANELS])


def _matrices(
    panels: dict, title: str, cbar: str, cmap: str, vmin: float, vmax: float, xlabel: str, ylabel: str
) -> bytes:
    """One heatmap per panel {title: matrix[E, E]} on a shared colour scale."""
    fig, axes = plots.grid(len(panels), width=3.4, height=3.1)
    im = None
    for ax, (name, m) in zip(axes, panels.items()):
        im = ax.imshow(m, interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set(title=name, xlabel=xlabel, ylabel=ylabel, xticks=[], yticks=[])
    colorbar(fig, im, axes, cbar)
    suptitle(fig, title)
    return plots.png(fig)


def _top_pairs(s) -> list[dict]:
    """The most co-selected pairs of each run's drawn layer, with model, condition and layer."""
    return [
        {
            "model": k.split(" / ")[0],
            "condition": k.split(" / ")[1],
            "layer": s.heatmaps[k][1],
            "rank": i + 1,
            "pair": f"{a}-{b}",
            "co_selections": n,
            "lift": li,
        }
        for k, ps in s.pairs.items()
        for i, (a, b, n, li) in enumerate(ps)
    ]


def coactivation_section(ctx) -> Section:
    """Expert co-activation within a layer (token traces)."""
    s = _summary_with(ctx, "coactivation", "no run has token traces: observe with --traces")
    heat = {k: np.log2(np.clip(np.nan_to_num(m, nan=1.0), 1 / 8, 8)) for k, (m, _) in _panels(s.heatmaps).items()}
    layer = next(iter(s.heatmaps.values()))[1]
    fig = _matrices(
        heat,
        f"Co-activation lift of expert pairs in MoE layer {layer} (every panel; the most "
        "concentrated on average), experts in clustering order",
        "log2(observed / expected pairs); 0 = independent",
        "RdBu_r",
        -3,
        3,
        "expert (cluster order)",
        "expert (cluster order)",
    )
    pairs = _top_pairs(s)
    cols = "model condition layer pairs top_share top_share_indep tv tv_noise max_lift lift_p99".split()
    return Section(
        "Expert co-activation within a layer (token traces)",
        html=COACTIVATION_HTML,
        figures=[
            Figure(
                "coactivation-lift",
                fig,
                "log2 lift per expert pair; block structure = groups of experts chosen together",
            )
        ],
        tables=[
            Table("coactivation", _round(s.coactivation), "Co-activation per run and MoE layer", cols),
            Table(
                "coactivation-top-pairs",
                _round(pairs),
                "Most co-selected pairs of the drawn layer (the most concentrated one per run)",
                ["model", "condition", "layer", "rank", "pair", "co_selections", "lift"],
            ),
        ],
        notes=[n for n in s.notes if "traces" in n],
    )


def _uncertainty_figure(ctx, rows) -> bytes:
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
            plots.line(ax, x, [r["uncertainty_coef"] for r in mine], color=ctx.style.color(cond))
            ax.plot(
                x,
                [r.get("uncertainty_coef_shuffled", np.nan) for r in mine],
                color=ctx.style.color(cond),
                linestyle=":",
                linewidth=1.0,
            )
            conds.append(cond)
        ax.set(title=model, xlabel="MoE layer l (pair l -> l+1)", ylabel="uncertainty coefficient I/H(next)")
        ax.set_xticks(sorted({r["layer"] for r in rs}))
        ax.grid(alpha=0.25)
    suptitle(fig, "Cross-layer affinity: information the layer-l expert gives about layer l+1")
    plots.legend(fig, ctx.style, conds, (), [("token-shuffled control", {"color": "0.3", "linestyle": ":"})])
    return plots.png(fig)


def affinity_section(ctx) -> Section:
    """Cross-layer expert affinity (token traces)."""
    s = _summary_with(ctx, "affinity", "no run has token traces with two or more MoE layers")
    trans = {k: m for k, (m, _) in _panels(s.transitions).items()}
    pair = next(iter(s.transitions.values()))[1] if s.transitions else 0
    vmax = max(float(np.percentile(m, 99.5)) for m in trans.values()) or 1.0
    cols = (
        "model condition layer next mi mi_shuffled h_next h_cond uncertainty_coef uncertainty_coef_shuffled "
        "top1 top1_indep top20 top20_indep"
    ).split()
    return Section(
        "Cross-layer expert affinity (token traces)",
        html=AFFINITY_HTML,
        figures=[
            Figure(
                "affinity-uncertainty",
                _uncertainty_figure(ctx, s.affinity),
                "uncertainty coefficient per layer pair; dotted: the token-shuffled control",
            ),
            Figure(
                "affinity-conditional",
                _matrices(
                    trans,
                    f"Next-layer expert given the current expert, MoE layers {pair} -> {pair + 1} (every "
                    "panel; the most informative pair on average)",
                    "p(expert b in layer l+1 | expert a in layer l)",
                    "magma",
                    0.0,
                    vmax,
                    "layer l+1 expert (cluster order)",
                    "layer l expert (cluster order)",
                ),
                "rows: current expert; columns: next expert",
            ),
        ],
        tables=[Table("affinity", _round(s.affinity), "Affinity per run and layer pair", cols)],
    )


def _saving_figure(ctx, rows) -> bytes:
    by_panel: dict = {}
    for r in rows:
        if r["placement"] in _PLACEMENTS:
            lines = by_panel.setdefault(f"{r['model']}, {r['regime']}", {})
            ln = lines.setdefault(
                (r["condition"], r["placement"]), {"condition": r["condition"], "placement": r["placement"], "rows": []}
            )
            ln["rows"].append(r)
    panels = _panels(plots.small_multiples({k: list(v.values()) for k, v in by_panel.items()}))
    fig, axes = plots.grid(len(panels))
    conds = []
    for ax, (name, lines) in zip(axes, panels.items()):
        for ln in lines:
            mine = sorted(ln["rows"], key=lambda r: r["ep"])
            metric, _ = _PLACEMENTS[ln["placement"]]
            plots.line(
                ax,
                [r["ep"] for r in mine],
                [100 * r[f"{metric}_saving"] for r in mine],
                [100 * r[f"{metric}_saving_lo"] for r in mine],
                [100 * r[f"{metric}_saving_hi"] for r in mine],
                [r["steps"] for r in mine],
                color=ctx.style.color(ln["condition"]),
                dash=ctx.style.dash(ln["placement"]),
            )
            conds.append(ln["condition"])
        plots.int_ticks(ax, [r["ep"] for ln in lines for r in ln["rows"]])
        ax.axhline(0, color="0.5", linewidth=0.8, gid="reference")
        ax.set(title=name, xlabel="EP degree N (ranks)", ylabel="rows saved vs EPLB (%)")
        ax.grid(alpha=0.25)
    suptitle(fig, "Dispatch rows saved over EPLB, held out: coact (deduplicated), affinity (forwarded)")
    plots.legend(
        fig,
        ctx.style,
        conds,
        (),
        [(label, {"color": "0.25", "linestyle": ctx.style.dash(name)}) for name, (_, label) in _PLACEMENTS.items()],
    )
    return plots.png(fig)


def trace_placements_section(ctx) -> Section:
    """Placements fitted on token traces, held out."""
    s = _summary_with(ctx, "placements", "no run has token traces to fit co-activation or affinity placements on")
    fig = Figure(
        "trace-placements", _saving_figure(ctx, s.placements), "bands: 95% bootstrap interval over held-out steps"
    )
    rows = _round(s.placements)
    return Section(
        "Placements fitted on token traces (held out)",
        html=PLACEMENTS_HTML,
        figures=[fig],
        tables=[
            Table("trace-placements", rows, "Every placement per run, regime and EP degree", TRACE_PLACEMENTS_COLS)
        ],
        notes=[n for n in s.notes if "skipped" in n or "placements left out" in n],
    )


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
            ax.plot([r["k"] for r in mine], [r["mean_skew"] for r in mine], marker="o", markersize=3, color=shades[w])
        for r in rs:
            if r["k"] in ("never", "oracle"):
                ax.axhline(
                    r["mean_skew"],
                    color="C3" if r["k"] == "never" else "C2",
                    linestyle="--",
                    linewidth=1,
                    gid="reference",
                )
        plots.int_ticks(ax, [r["k"] for r in rs if isinstance(r["k"], int)])
        ax.set(title=name, xlabel="refit interval k (steps)", ylabel="mean receiver skew (max/mean)")
        ax.grid(alpha=0.25)
    suptitle(fig, "EPLB refitted every k steps on the last w: receiver skew between refits")
    legend(
        fig,
        [(f"window w = {w}", {"color": shades[w], "marker": "o"}) for w in ws]
        + [
            ("never refitted", {"color": "C3", "linestyle": "--"}),
            ("each step fitted on itself", {"color": "C2", "linestyle": "--"}),
        ],
    )
    return plots.png(fig)


def rebalance_section(ctx) -> Section:
    """Rebalancing over time (EPLB refit interval and window)."""
    s = _summary_with(ctx, "rebalance", "no run has enough steps in arrival order for the rebalancing sweep")
    png = _rebalance_figure(s.rebalance)
    fig = Figure("rebalance", png, "lines: one window w each; dashed: never refitted, and the in-sample bound")
    return Section(
        "Rebalancing over time: refit interval and window",
        html=REBALANCE_HTML,
        figures=[fig],
        tables=[
            Table("rebalance", _round(s.rebalance), "Every (k, w) per run (nominal bytes and seconds)", REBALANCE_COLS),
            Table("rebalance-best", _round(s.rebalance_best), "Best (k, w) per migration bandwidth (nominal)"),
        ],
        notes=[n for n in s.notes if "nominal" in n or "rebalance" in n],
    )
