"""Dispatch-cost figures (PNG bytes): time against receiver skew per dispatcher and message size,
NCCL bandwidth against message size, predicted against measured time, predicted time against N.

Colours here name dispatchers (or EP degrees), never conditions; each figure's legend says which.
"""

from __future__ import annotations

import numpy as np

from dodoco.report.plots import grid, int_ticks, png, small_multiples
from dodoco.report.style import CASE_MARKERS as _MARKERS
from dodoco.report.style import DISPATCHER_COLORS as _COLORS
from dodoco.report.style import legend as _legend
from dodoco.report.style import suptitle

__all__ = ["bytes_label", "dispatch_vs_skew", "predicted_vs_measured", "predicted_vs_n", "sweep"]


def bytes_label(b: float) -> str:
    """``"256 MiB"`` / ``"64 KiB"``: bytes as a power-of-two size."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def dispatch_vs_skew(panels: dict[str, list[dict]], title: str) -> bytes:
    """Dispatch time against measured receiver skew: {panel: [{dispatcher, kind, receiver_skew,
    dispatch_ms, p10_ms, p90_ms}]}; colour = dispatcher, marker = case kind, error bars p10..p90;
    the synthetic skew controls (skew, grid) of a dispatcher are joined in skew order."""
    fig, axes = grid(len(panels), 3.8, 3.0)
    names = list(dict.fromkeys(p["dispatcher"] for pts in panels.values() for p in pts))
    color = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(names)}
    kinds = []
    for ax, (name, pts) in zip(axes, panels.items()):
        for p in pts:
            err = (
                [[p["dispatch_ms"] - p["p10_ms"]], [p["p90_ms"] - p["dispatch_ms"]]]
                if np.isfinite([p.get("p10_ms", np.nan), p.get("p90_ms", np.nan)]).all()
                else None
            )
            ax.errorbar(
                [p["receiver_skew"]],
                [p["dispatch_ms"]],
                yerr=err,
                fmt=_MARKERS.get(p["kind"], "o"),
                color=color[p["dispatcher"]],
                markersize=4,
                capsize=2,
                linewidth=0.8,
            )
            kinds.append(p["kind"])
        for d in names:
            ctl = sorted(
                (p["receiver_skew"], p["dispatch_ms"])
                for p in pts
                if p["dispatcher"] == d and p["kind"] in ("skew", "grid")
            )
            if len(ctl) >= 2:
                ax.plot(*zip(*ctl), color=color[d], linewidth=0.9, alpha=0.7)
        ax.set(title=name, xlabel="receiver skew (max/mean rows received)", ylabel="dispatch time (ms, median)")
        ax.grid(alpha=0.25)
    suptitle(fig, title)
    _legend(
        fig,
        [(f"dispatcher {d}", {"color": color[d], "marker": "o", "linestyle": "-"}) for d in names]
        + [
            (f"{k} cases", {"color": "0.3", "marker": _MARKERS.get(k, "o"), "linestyle": "none"})
            for k in dict.fromkeys(kinds)
        ],
    )
    return png(fig)


def sweep(lines: dict[str, list[dict]], title: str) -> bytes:
    """Uniform all_to_all_single: bus bandwidth against bytes per rank, {label (e.g. "N = 4"): rows}."""
    fig, (ax,) = grid(1, 5.6, 3.4)
    for i, (label, rows) in enumerate(lines.items()):
        rows = sorted(rows, key=lambda s: s["bytes_per_rank"])
        ax.plot(
            [s["bytes_per_rank"] for s in rows],
            [s["busbw_GBps"] for s in rows],
            marker="o",
            markersize=3,
            color=_COLORS[i % len(_COLORS)],
        )
    ax.set_xscale("log", base=2)
    ticks = [1 << k for k in range(10, 31, 4)]
    ax.set_xticks(ticks, [bytes_label(t) for t in ticks])
    ax.set(xlabel="message size (bytes sent per rank)", ylabel="bus bandwidth (GB/s)")
    suptitle(fig, title)
    ax.grid(alpha=0.25)
    _legend(
        fig,
        [
            (label, {"color": _COLORS[i % len(_COLORS)], "marker": "o", "markersize": 3})
            for i, label in enumerate(lines)
        ],
    )
    return png(fig)


def predicted_vs_measured(rows: list[dict], title: str) -> bytes:
    """Simulator: predicted against measured dispatch time, colour = N, marker = case group, with y = x."""
    fig, (ax,) = grid(1, 4.4, 4.0)
    groups = list(dict.fromkeys(str(r["cases"]) for r in rows))
    Ns = sorted({int(r["N"]) for r in rows})
    marks = ("o", "s", "^", "D", "v", "P", "X")
    for r in rows:
        ax.scatter(
            [r["measured_ms"]],
            [r["predicted_ms"]],
            s=22,
            color=_COLORS[Ns.index(int(r["N"])) % len(_COLORS)],
            marker=marks[groups.index(str(r["cases"])) % len(marks)],
        )
    lim = [0, 1.08 * max(max(r["measured_ms"], r["predicted_ms"]) for r in rows)]
    ax.plot(lim, lim, color="0.4", linewidth=0.8, gid="reference")
    ax.set(
        xlim=lim, ylim=lim, xlabel="measured dispatch time (ms)", ylabel="predicted dispatch time (ms)", aspect="equal"
    )
    suptitle(fig, title)
    _legend(
        fig,
        [
            (f"N = {n}", {"color": _COLORS[i % len(_COLORS)], "marker": "o", "linestyle": "none"})
            for i, n in enumerate(Ns)
        ]
        + [(g, {"color": "0.3", "marker": marks[i % len(marks)], "linestyle": "none"}) for i, g in enumerate(groups)]
        + [("predicted = measured", {"color": "0.4", "linewidth": 0.8})],
    )
    return png(fig)


def predicted_vs_n(panels: dict[str, list[dict]], title: str, style) -> bytes:
    """Predicted dispatch time against N: {panel: [{condition, dispatcher, placement, N[], dispatch_ms[],
    balanced_ms[], nominal[]}]}; colour = condition, line style = placement, marker = dispatcher (hollow
    where the point rests on a nominal term); the balanced control (same bytes, uniform splits) thin grey."""
    from dodoco.report.plots import legend

    panels = small_multiples(panels, ("dispatcher", "condition"))
    fig, axes = grid(len(panels), 3.8, 3.0)
    markers = ("o", "s", "^", "D", "v", "P")
    dispatchers = list(dict.fromkeys(ln["dispatcher"] for lines in panels.values() for ln in lines))
    conds, places, hollow = [], [], False
    for ax, (name, lines) in zip(axes, panels.items()):
        for ln in lines:
            mk = markers[dispatchers.index(ln["dispatcher"]) % len(markers)]
            color, nom = style.color(ln["condition"]), np.asarray(ln.get("nominal") or [False] * len(ln["N"]))
            x, y = np.asarray(ln["N"]), np.asarray(ln["dispatch_ms"])
            ax.plot(x, y, color=color, linestyle=style.dash(ln["placement"]))
            ax.plot(x[~nom], y[~nom], color=color, linestyle="none", marker=mk, markersize=4)
            ax.plot(x[nom], y[nom], color=color, linestyle="none", marker=mk, markersize=5, markerfacecolor="white")
            hollow |= bool(nom.any())
            ax.plot(ln["N"], ln["balanced_ms"], color="0.6", linewidth=0.8, gid="reference")
            conds.append(ln["condition"])
            places.append(ln["placement"])
        int_ticks(ax, [n for ln in lines for n in ln["N"]])
        ax.set(title=name, xlabel="EP degree N (ranks)", ylabel="predicted dispatch time (ms)")
        ax.grid(alpha=0.25)
    suptitle(fig, title)
    legend(
        fig,
        style,
        conds,
        places,
        [
            (f"dispatcher {d}", {"color": "0.25", "marker": markers[i % len(markers)], "linestyle": "none"})
            for i, d in enumerate(dispatchers)
        ]
        + [("balanced bytes (same model)", {"color": "0.6", "linewidth": 0.8})]
        + (
            [
                (
                    "hollow: rests on a nominal term",
                    {"color": "0.25", "marker": "o", "markerfacecolor": "white", "linestyle": "none"},
                )
            ]
            if hollow
            else []
        ),
    )
    return png(fig)


def layer_terms(panels: dict[str, list[dict]], title: str) -> bytes:
    """The predicted MoE layer per EP degree, term by term: {panel: rows sorted by N with dispatch_ms,
    compute_ms (busiest rank), combine_ms, balanced_layer_ms}; stacked bars, the balanced layer as a
    black tick on each bar (the same tokens, every rank equal)."""
    fig, axes = grid(len(panels), 3.8, 3.0)
    terms = (
        ("dispatch_ms", "dispatch", "#4477aa"),
        ("compute_ms", "busiest rank's experts", "#cc6677"),
        ("combine_ms", "combine", "#88ccee"),
    )
    for ax, (name, rows) in zip(axes, panels.items()):
        x = np.arange(len(rows))
        bottom = np.zeros(len(rows))
        for key, _, color in terms:
            h = np.array([r.get(key, np.nan) for r in rows], dtype=float)
            ax.bar(x, h, bottom=bottom, color=color, width=0.6)
            bottom = bottom + np.nan_to_num(h)
        ax.plot(
            x,
            [r.get("balanced_layer_ms", np.nan) for r in rows],
            linestyle="none",
            marker="_",
            markersize=18,
            color="black",
            markeredgewidth=2,
        )
        ax.set_xticks(x, [str(r["N"]) for r in rows])
        ax.set(title=name, xlabel="EP degree N (ranks)", ylabel="predicted layer time (ms)")
        ax.grid(alpha=0.25, axis="y")
    suptitle(fig, title)
    _legend(
        fig,
        [(label, {"color": color, "linewidth": 6}) for _, label, color in terms]
        + [("balanced layer", {"color": "black", "marker": "_", "markersize": 12, "linestyle": "none"})],
    )
    return png(fig)
