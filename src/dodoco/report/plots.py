"""Report figures: each function takes plain arrays or rows and returns PNG bytes (Agg backend).

No function reads run directories; the sections prepare the data. Every figure: a title saying
what is plotted, axis labels with units, one legend outside the axes (colour = condition, line
style = placement, from one ``Style`` per report), intervals as translucent bands, values resting
on two steps or fewer as hollow markers without a band, EP degrees and batch sizes as integer ticks.
"""

from __future__ import annotations

import io
import math

import numpy as np

from dodoco.report import style as _style
from dodoco.report.style import DPI, MAX_LINES, Style, colorbar, suptitle

__all__ = [
    "AUDIT",
    "bands_chart",
    "ep_lines",
    "gini_matrices",
    "gini_vs_batch",
    "grouped_bars",
    "heatmaps",
    "lorenz_curves",
    "measured_vs_predicted",
    "png",
    "small_multiples",
    "suptitle",
]

FEW = 2  # values resting on this many steps or fewer are drawn hollow
#: When a list, ``png`` appends (figure title, ``style.audit`` problems) of every figure it renders.
AUDIT: list | None = None


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes (grown until no text is clipped) and close it."""
    plt = _plt()
    _style.fit(fig)
    if AUDIT is not None:
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""
        AUDIT.append((title, _style.audit(fig)))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def small_multiples(panels: dict[str, list[dict]], keys=("placement", "condition")) -> dict[str, list[dict]]:
    """Panels of at most MAX_LINES lines: a panel with more is split by the first of ``keys`` that
    gives groups that small (titles "panel, value"), else cut into chunks of MAX_LINES."""
    out: dict[str, list[dict]] = {}
    for name, lines in panels.items():
        if len(lines) <= MAX_LINES:
            out[name] = lines
            continue
        for key in keys:
            groups: dict = {}
            for ln in lines:
                groups.setdefault(ln.get(key), []).append(ln)
            if len(groups) > 1 and max(map(len, groups.values())) <= MAX_LINES:
                out.update({f"{name}, {v}" if v is not None else name: g for v, g in groups.items()})
                break
        else:
            for i in range(0, len(lines), MAX_LINES):
                out[f"{name} ({i // MAX_LINES + 1})"] = lines[i : i + MAX_LINES]
    return out


def grid(n: int, width: float = 3.6, height: float = 2.9, ncols: int = 3, **kw):
    """A constrained-layout figure of n panels (ncols per row) -> (fig, axes[n])."""
    plt = _plt()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols + 1.8, height * nrows + 0.5), squeeze=False, layout="constrained", **kw
    )
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def int_ticks(ax, values, log2: bool = True) -> None:
    """x axis with a tick at each of ``values`` labelled as an integer (log2 scale by default)."""
    from matplotlib.ticker import NullLocator

    vals = sorted({int(v) for v in values})
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_xticks(vals, [str(v) for v in vals])
    ax.xaxis.set_minor_locator(NullLocator())


def legend(fig, style: Style, conditions=(), placements=(), extra=()) -> None:
    """One legend outside the axes: a colour per condition, a line style per placement, extras
    ((label, Line2D kwargs))."""
    given = list(dict.fromkeys(conditions))
    ordered = [c for c in style.conditions() if c in given] + [c for c in given if c not in style.conditions()]
    _style.legend(
        fig,
        [(c, {"color": style.color(c), "marker": "o", "markersize": 4}) for c in ordered]
        + [(f"placement {p}", {"color": "0.25", "linestyle": style.dash(p)}) for p in dict.fromkeys(placements)]
        + list(extra),
    )


_HOLLOW = (
    "hollow marker: <= 2 steps, no interval",
    {"color": "0.25", "marker": "o", "markersize": 5, "markerfacecolor": "white", "linestyle": "none"},
)


def line(ax, x, y, lo=None, hi=None, steps=None, *, color, dash="-", marker="o") -> bool:
    """A line with its interval band; points resting on few steps hollow. Returns True if any was hollow."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ax.plot(x, y, color=color, linestyle=dash, linewidth=1.4)
    few = np.zeros(x.size, bool) if steps is None else np.asarray(steps) <= FEW
    ax.plot(x[~few], y[~few], linestyle="none", marker=marker, markersize=4, color=color)
    ax.plot(x[few], y[few], linestyle="none", marker=marker, markersize=5, color=color, markerfacecolor="white")
    if lo is not None and hi is not None:
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.sum() >= 2:
            ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=0.16, linewidth=0)
    return bool(few.any())


def series(ax, ln: dict, x: str, style: Style, dash: str = "-") -> bool:
    """``line`` of one series {x: [], mean[], lo[], hi[], steps[], condition}, coloured by condition."""
    band = (ln.get("lo"), ln.get("hi"), ln.get("steps"))
    return line(ax, ln[x], ln["mean"], *band, color=style.color(ln["condition"]), dash=dash)


def ep_lines(panels: dict[str, list[dict]], ylabel: str, title: str, style: Style) -> bytes:
    """A metric against EP degree N: {panel title: [{condition, placement, ep[], mean[], lo[], hi[], steps[]}]};
    a panel of more than MAX_LINES lines becomes small multiples (``small_multiples``)."""
    panels = small_multiples(panels)
    fig, axes = grid(len(panels))
    conds, places, hollow = [], [], False
    for ax, (name, lines) in zip(axes, panels.items()):
        for ln in lines:
            hollow |= series(ax, ln, "ep", style, style.dash(ln.get("placement")))
            conds.append(ln["condition"])
            places += [ln["placement"]] if ln.get("placement") else []
        int_ticks(ax, [n for ln in lines for n in ln["ep"]])
        ax.set(title=name, xlabel="EP degree N (ranks)", ylabel=ylabel)
        ax.grid(alpha=0.25)
    suptitle(fig, title)
    legend(fig, style, conds, places, [_HOLLOW] if hollow else [])
    return png(fig)


def gini_vs_batch(panels: dict[str, list[dict]], style: Style, title: str) -> bytes:
    """Per-step Gini against batch size B: {panel: [{condition, batch[], mean[], lo[], hi[], steps[]}]}."""
    panels = small_multiples(panels, ("kind", "condition"))
    fig, axes = grid(len(panels))
    conds, hollow = [], False
    for ax, (name, lines) in zip(axes, panels.items()):
        for ln in lines:
            hollow |= series(ax, ln, "batch", style)
            conds.append(ln["condition"])
        int_ticks(ax, [b for ln in lines for b in ln["batch"]])
        ax.set(title=name, xlabel="batch size B (sequences per step)", ylabel="per-step Gini (mean over steps)")
        ax.grid(alpha=0.25)
    suptitle(fig, title)
    legend(fig, style, conds, (), [_HOLLOW] if hollow else [])
    return png(fig)


def bands_chart(models: list[str], points: list[dict], low: float, high: float, style: Style, title: str) -> bytes:
    """Gini per model on one axis with the band thresholds: points [{model, gini, lo, hi, condition,
    kind}] (real text filled circles, mock crosses), models labelled with their band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.2, 1.3 + 0.5 * len(models)), layout="constrained")
    ax.axvspan(0, low, color="#009E73", alpha=0.08, linewidth=0)
    ax.axvspan(high, 1, color="#D55E00", alpha=0.08, linewidth=0)
    ax.axvline(low, color="#009E73", linestyle=":", linewidth=1)
    ax.axvline(high, color="#D55E00", linestyle=":", linewidth=1)
    conds = list(dict.fromkeys(p["condition"] for p in points))
    offsets = {c: (i - (len(conds) - 1) / 2) * 0.5 / max(1, len(conds)) for i, c in enumerate(conds)}
    for p in points:
        y = models.index(p["model"]) + offsets[p["condition"]]
        err = None
        if np.isfinite(p.get("lo", np.nan)) and np.isfinite(p.get("hi", np.nan)):
            err = [[p["gini"] - p["lo"]], [p["hi"] - p["gini"]]]
        ax.errorbar(
            [p["gini"]],
            [y],
            xerr=err,
            fmt="o" if p["kind"] == "real" else "x",
            markersize=5,
            color=style.color(p["condition"]),
            capsize=2,
            linewidth=1,
        )
    gmax = max([p["gini"] for p in points if np.isfinite(p["gini"])] + [high]) * 1.12
    ax.set_yticks(range(len(models)), models, fontsize=8)
    suptitle(fig, title)
    ax.set(
        xlim=(0, min(1.0, gmax)), ylim=(-0.6, len(models) - 0.4), xlabel="per-step Gini (mean over steps; 0 = balanced)"
    )
    ax.invert_yaxis()
    legend(
        fig,
        style,
        conds,
        (),
        [
            ("real text", {"color": "0.25", "marker": "o", "linestyle": "none"}),
            ("mock", {"color": "0.25", "marker": "x", "linestyle": "none"}),
            (f"data-resilient at or below {low}", {"color": "#009E73", "linestyle": ":"}),
            (f"concentrated at or above {high}", {"color": "#D55E00", "linestyle": ":"}),
        ],
    )
    return png(fig)


def gini_matrices(rows: list[str], cols: list[str], panels: dict[str, np.ndarray], title: str) -> bytes:
    """Annotated model x condition matrices sharing one colour scale: {panel title: values[rows, cols]}."""
    import matplotlib

    cmap = matplotlib.colormaps["magma_r"].with_extremes(bad="0.9")
    vals = np.concatenate([np.asarray(v, float).ravel() for v in panels.values()])
    vmax = max(0.4, float(np.nanmax(vals)) if np.isfinite(vals).any() else 0.4)
    fig, axes = grid(len(panels), width=1.4 + 0.95 * len(cols), height=1.0 + 0.42 * len(rows), ncols=2)
    im = None
    for ax, (name, v) in zip(axes, panels.items()):
        v = np.asarray(v, dtype=np.float64)
        im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
        for (i, j), val in np.ndenumerate(v):
            text = f"{val:.3f}" if np.isfinite(val) else "no run"
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if np.isfinite(val) and val > 0.6 * vmax else "black",
            )
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set_title(name, fontsize=9)
    colorbar(fig, im, axes, "Gini (0 = balanced)")
    suptitle(fig, title)
    return png(fig)


def heatmaps(panels: dict[str, np.ndarray], vmax: float, title: str) -> bytes:
    """Per-layer x expert load relative to the layer mean, {panel: load[L, E]}, on one colour scale
    0..vmax shared by every panel (and, with the same vmax, by every heatmap figure)."""
    fig, axes = grid(len(panels), width=3.4, height=2.4)
    im = None
    for ax, (name, load) in zip(axes, panels.items()):
        x = np.asarray(load, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = x / x.mean(axis=1, keepdims=True)
        im = ax.imshow(rel, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=vmax)
        ax.set(title=name, xlabel="expert index", ylabel="MoE layer")
    colorbar(fig, im, axes, "load / layer mean (1 = balanced)")
    suptitle(fig, title)
    return png(fig)


def lorenz_curves(panels: dict[str, list[tuple[str, np.ndarray, np.ndarray]]], style: Style, title: str) -> bytes:
    """Lorenz curves {panel: [(condition, x[E+1], y[E+1])]}; the diagonal is perfect balance."""
    fig, axes = grid(len(panels), 3.0, 2.9)
    conds = []
    for ax, (name, curves) in zip(axes, panels.items()):
        ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, gid="reference")
        for cond, x, y in curves:
            ax.plot(x, y, color=style.color(cond), linewidth=1.4)
            conds.append(cond)
        ax.set(
            title=name,
            xlabel="share of experts (least loaded first)",
            ylabel="share of assignments",
            xlim=(0, 1),
            ylim=(0, 1),
            aspect="equal",
        )
    suptitle(fig, title)
    legend(fig, style, conds, (), [("balanced (diagonal)", {"color": "0.6", "linewidth": 0.8})])
    return png(fig)


def grouped_bars(categories: list[str], groups: dict[str, list[float]], xlabel: str, title: str, style: Style) -> bytes:
    """Horizontal bars per category, one per condition that has a value there ({condition:
    values[categories]}); a category holds only the bars it has and a category with none is left
    out, so no slot is empty."""
    plt = _plt()
    have = [(cat, [(c, v[i]) for c, v in groups.items() if np.isfinite(v[i])]) for i, cat in enumerate(categories)]
    have = [(cat, bars) for cat, bars in have if bars]
    fig, ax = plt.subplots(figsize=(8.0, 1.3 + 0.17 * sum(len(b) + 0.9 for _, b in have)), layout="constrained")
    y, ticks = 0.0, []
    for cat, bars in have:
        for k, (cond, val) in enumerate(bars):
            ax.barh(y + k * 0.8, val, 0.75, color=style.color(cond))
            ax.annotate(
                f"{val:.2f}",
                (val, y + k * 0.8),
                xytext=(3 if val >= 0 else -3, 0),
                textcoords="offset points",
                ha="left" if val >= 0 else "right",
                va="center",
                fontsize=6,
                color="0.3",
            )
        ticks.append(y + 0.4 * (len(bars) - 1))
        y += 0.8 * len(bars) + 0.7
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.margins(x=0.1)
    ax.set_yticks(ticks, [cat for cat, _ in have], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel=xlabel)
    suptitle(fig, title)
    ax.grid(axis="x", alpha=0.25)
    legend(fig, style, [c for _, bars in have for c, _ in bars])
    return png(fig)


def measured_vs_predicted(panels: dict[str, list[dict]], ylabel: str, title: str, style: Style) -> bytes:
    """Measured (line with interval) and predicted (crosses) against N:
    {panel: [{condition, ep[], measured[], lo[], hi[], steps[], predicted[]}]}."""
    panels = small_multiples(panels, ("kind", "condition"))
    fig, axes = grid(len(panels))
    conds, hollow = [], False
    for ax, (name, lines) in zip(axes, panels.items()):
        for ln in lines:
            color = style.color(ln["condition"])
            hollow |= line(ax, ln["ep"], ln["measured"], ln.get("lo"), ln.get("hi"), ln.get("steps"), color=color)
            ax.plot(ln["ep"], ln["predicted"], linestyle="none", marker="x", markersize=6, color=color)
            conds.append(ln["condition"])
        int_ticks(ax, [n for ln in lines for n in ln["ep"]])
        ax.set(title=name, xlabel="EP degree N (ranks)", ylabel=ylabel)
        ax.grid(alpha=0.25)
    suptitle(fig, title)
    extra = [
        ("measured (line, 95% band)", {"color": "0.25", "marker": "o", "markersize": 4}),
        ("predicted by NeuSim's formula", {"color": "0.25", "marker": "x", "linestyle": "none"}),
    ]
    legend(fig, style, conds, (), extra + ([_HOLLOW] if hollow else []))
    return png(fig)
