"""Report sections on expert parallelism: mitigations, measured vs NeuSim-predicted skew, and the
decode regime (from token traces). They draw what ``dodoco.findings.analyses`` computes; each is
``(ctx) -> Section`` (report/build.py).
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.findings import analyses
from dodoco.findings.analyses import MITIGATION_SEQUENCES
from dodoco.report import plots
from dodoco.report.section import Figure, Section, SkipSection, Table

__all__ = ["decode_section", "mitigations_section", "neusim_section"]

#: (mitigation, metric) pairs drawn as bars; every row is in the table.
_BARS = (
    ("adaptive_relayout", "receiver_skew"),
    ("adaptive_relayout", "max_mean"),
    ("sequence_placement", "recv_max_mean"),
    ("sequence_placement", "local_fraction"),
    ("hierarchical_dispatch", "max_inter_node_recv"),
    ("hierarchical_dispatch", "total_inter_node"),
    ("topology_mapping", "max_node_bytes"),
)


def _bar_label(r: dict) -> str:
    setting = r["setting"].split(",")[0] if r["mitigation"] == "adaptive_relayout" else ""
    return f"{r['mitigation'].replace('_', ' ')}{' ' + setting if setting else ''}: {r['metric'].replace('_', ' ')}"


def _bars(own: list[dict]) -> list[dict]:
    """The rows drawn as bars: _BARS, adaptive relayout with no replicas and with the most."""
    relayout = [x for x in own if x["mitigation"] == "adaptive_relayout"]
    keep = {x["setting"] for x in relayout if x["setting"].startswith("redundant=0,")} | {
        max((x["setting"] for x in relayout), key=lambda s: int(s.split(",")[0].split("=")[1]), default="")
    }
    return [
        x
        for x in own
        if (x["mitigation"], x["metric"]) in _BARS and (x["mitigation"] != "adaptive_relayout" or x["setting"] in keep)
    ]


def mitigations_section(ctx) -> Section:
    """Mitigations"""
    by_label: dict[str, list] = {}
    rows, figs, notes = [], [], []
    for r in ctx.sorted_runs():
        try:
            got = ctx.cached(
                ("mitigations", str(r.path)),
                lambda r=r: analyses.mitigation_rows(r, ctx.ep_batch(r), ctx.kind(r), ctx.options.seed),
            )
        except DodocoError as exc:
            notes.append(f"{r.path}: {exc}")
            continue
        rows += got
        by_label.setdefault(ctx.label(r), []).extend(got)
    if not rows:
        raise SkipSection("; ".join(notes) or "no run fits a mitigation step")
    for label, own in by_label.items():
        bars = _bars(own)
        cats = list(dict.fromkeys(_bar_label(x) for x in bars))
        groups = {
            c: [
                next((x["fraction_removed"] for x in bars if x["condition"] == c and _bar_label(x) == k), np.nan)
                for k in cats
            ]
            for c in dict.fromkeys(x["condition"] for x in bars)
        }
        first = own[0]
        figs.append(
            Figure(
                f"mitigations-{label}",
                plots.grouped_bars(
                    cats,
                    groups,
                    "fraction of the straggler removed",
                    f"{label}: mitigations at N={first['ep']}, B={first['batch']}, {first['gpus_per_node']} GPUs per node",
                    ctx.style,
                ),
                "share of the straggler each mitigation removes, per condition: 1 = all of it, 0 = none, < 0 = worse "
                "(ratio metrics: of x - 1; bytes: of the bytes; local fraction: of the remote share)",
            )
        )
    html = (
        f"<p>Measured on a seeded subset of at most {MITIGATION_SEQUENCES} units per run. Ratio metrics: "
        "(base - mitigated) / (base - 1); bytes: (base - mitigated) / base; local fraction: "
        "(mitigated - base) / (1 - base). docs/ep.md derives each mitigation.</p>"
    )
    return Section(
        "Mitigations", html, figs, [Table("mitigations", rows, "every mitigation, setting and metric")], notes=notes
    )


def neusim_section(ctx) -> Section:
    """Measured vs NeuSim-predicted receiver skew"""
    rows, panels, notes = [], {}, []
    for r in ctx.sorted_runs():
        for regime in ["prefill"] + (["decode"] if r.has_tokens else []):
            try:
                got = ctx.cached(
                    ("neusim", str(r.path), regime),
                    lambda r=r, g=regime: analyses.neusim_rows(r, g, ctx.ep_batch(r), ctx.options),
                )
            except DodocoError as exc:
                notes.append(f"{r.path}: {exc}")
                continue
            rows += got
            if got:
                panels.setdefault(f"{ctx.label(r)}, {regime}, B={ctx.ep_batch(r)}", []).append(
                    {
                        "condition": r.condition,
                        "ep": [x["ep"] for x in got],
                        "measured": [x["measured_skew"] for x in got],
                        "predicted": [x["predicted_skew"] for x in got],
                    }
                )
    if not rows:
        raise SkipSection("; ".join(notes) or "no EP degree fits the runs' units")
    fig = Figure(
        "neusim-skew",
        plots.measured_vs_predicted(
            panels,
            "receiver skew (max/mean rank load)",
            "Receiver skew measured on the trace vs predicted by NeuSim's formula, contiguous placement",
            ctx.style,
        ),
        "measured: mean over steps and MoE layers; predicted: NeuSim's formula fed the trace's "
        "expert_load_imbalance_factor and num_worst_case_experts at each EP degree",
    )
    html = (
        "<p>NeuSim's worst-case device holds ceil(E/EP) experts, W of them hot at f x mean load "
        "(docs/neusim.md). <code>dodoco export neusim RUN -o FILE</code> writes the parameters.</p>"
    )
    return Section(
        "Measured vs NeuSim-predicted skew",
        html,
        [fig],
        [Table("neusim", rows, "NeuSim parameters and receiver skew per EP degree")],
        notes=notes,
    )


def _curve_rows(r, regime: str, B: int, base: str, metric: str, c) -> tuple[dict, list[dict]]:
    """(the plotted line, the table rows) of one curve of one run and regime."""
    line = {
        "condition": r.condition,
        "placement": base,
        "ep": c.ep,
        "mean": c.mean,
        "lo": c.lo,
        "hi": c.hi,
        "steps": c.steps,
    }
    rows = [
        {
            "model": r.model,
            "condition": r.condition,
            "regime": regime,
            "batch": B,
            "placement": base,
            "ep": int(n),
            "metric": metric,
            "steps": int(k),
            "mean": m,
            "lo": lo,
            "hi": hi,
        }
        for n, m, lo, hi, k in zip(c.ep, c.mean, c.lo, c.hi, c.steps)
    ]
    return line, rows


def _decode_figures(ctx, panels: dict, base: str) -> list:
    prefill_decode = "prefill: steps of N*B whole sequences; decode: one token per sequence at the same position"
    return [
        Figure(
            "decode-max-mean",
            plots.ep_lines(
                panels["max_mean"],
                "per-expert max/mean load (x mean)",
                "Per-expert straggler against EP degree N: prefill steps and decode steps",
                ctx.style,
            ),
            prefill_decode,
        ),
        Figure(
            "decode-receiver-skew",
            plots.ep_lines(
                panels["receiver_skew"],
                "receiver skew (max/mean rank load)",
                f"Receiver skew against EP degree N ({base} placement): prefill and decode steps",
                ctx.style,
            ),
            "mean over layers and steps; band: bootstrap 95% interval",
        ),
    ]


def decode_section(ctx) -> Section:
    """Prefill and decode regimes"""
    traced = [r for r in ctx.sorted_runs() if r.has_tokens]
    if not traced:
        raise SkipSection("no run has token traces (observe with --traces)")
    base = ctx.options.placement[0]
    panels: dict[str, dict[str, list]] = {"max_mean": {}, "receiver_skew": {}}
    rows = []
    for r in traced:
        B, prefill = ctx.ep_batch(r), ctx.scan(r)
        decode = ctx.cached(
            ("decode", str(r.path)), lambda r=r: analyses.decode_curves(r, ctx.ep_batch(r), base, ctx.options)
        )
        for regime, curves in (("prefill", prefill.curves if prefill else {}), ("decode", decode)):
            for metric in panels:
                c = curves.get((metric, base))
                if c is not None:
                    line, more = _curve_rows(r, regime, B, base, metric, c)
                    panels[metric].setdefault(f"{ctx.label(r)}, {regime}, B={B}", []).append(line)
                    rows += more
    html = (
        "<p>Decode steps: one token per sequence at the same positions across the N*B sequences of a step "
        "(a causal model routes a token the same way in prefill and decode); docs/ep.md.</p>"
    )
    rows.sort(key=lambda x: (x["model"], x["condition"], x["regime"], x["metric"], x["batch"], x["ep"]))
    return Section(
        "Prefill and decode regimes",
        html,
        _decode_figures(ctx, panels, base),
        [Table("regimes", rows, "model-level, per N")],
    )
