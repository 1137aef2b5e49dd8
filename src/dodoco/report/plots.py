"""Report figures: each function takes plain arrays or table rows and returns PNG bytes (Agg backend).

No function reads run directories; the report sections prepare the data. Styles: real-text
conditions solid, mock conditions dashed; intervals drawn as translucent bands.
"""

from __future__ import annotations

import io
import math

import numpy as np

__all__ = ["bands_chart", "ep_lines", "gini_matrix", "gini_vs_batch", "grouped_bars", "heatmap", "lorenz_curves",
           "measured_vs_predicted", "png"]

DPI = 96


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _grid(n: int, width: float = 4.2, height: float = 3.2, ncols: int = 3):
    plt = _plt()
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             layout="constrained")
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _style(kind: str) -> dict:
    """Line style by kind: real/prefill solid with circles, mock/decode dashed with squares."""
    dashed = kind in ("mock", "decode")
    return {"linestyle": "--" if dashed else "-", "marker": "s" if dashed else "o", "markersize": 3}


def heatmap(load, title: str, *, xlabel: str = "expert", ylabel: str = "MoE layer") -> bytes:
    """Per-layer x expert load: load[L, E] (assignments), shown as load / layer mean (1 = balanced)."""
    plt = _plt()
    x = np.asarray(load, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = x / x.mean(axis=1, keepdims=True)
    L, E = rel.shape
    fig, ax = plt.subplots(figsize=(min(14, 3 + E * 0.04), min(10, 1.8 + L * 0.12)))
    vmax = float(np.nanpercentile(rel, 99.5)) if np.isfinite(rel).any() else 1.0
    im = ax.imshow(rel, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=max(vmax, 1.0))
    fig.colorbar(im, ax=ax, label="load / layer mean")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return png(fig)


def lorenz_curves(panels: dict[str, list[tuple[str, str, np.ndarray, np.ndarray]]]) -> bytes:
    """Lorenz curves: {panel title: [(label, kind, x[E+1], y[E+1])]}; the diagonal is balance."""
    fig, axes = _grid(len(panels), 3.6, 3.4)
    for ax, (title, curves) in zip(axes, panels.items()):
        ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.8)
        for label, kind, x, y in curves:
            ax.plot(x, y, label=label, linestyle=_style(kind)["linestyle"])
        ax.set(title=title, xlabel="share of experts (least loaded first)", ylabel="share of assignments",
               xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7)
    return png(fig)


def gini_matrix(rows: list[str], cols: list[str], values, title: str) -> bytes:
    """Annotated matrix values[len(rows), len(cols)] (NaN cells grey, "no run"), e.g. model x condition Gini."""
    plt = _plt()
    import matplotlib

    v = np.asarray(values, dtype=np.float64)
    cmap = matplotlib.colormaps["magma_r"].with_extremes(bad="0.88")  # no run for this cell: grey, labelled
    vmax = max(0.4, float(np.nanmax(v)) if np.isfinite(v).any() else 0.4)
    fig, ax = plt.subplots(figsize=(1.8 + 1.1 * len(cols), 1.2 + 0.5 * len(rows)))
    im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, vmin=0, vmax=vmax)
    for (i, j), val in np.ndenumerate(v):
        text = f"{val:.3f}" if np.isfinite(val) else "no run"
        color = "white" if np.isfinite(val) and val > 0.6 * vmax else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="Gini")
    return png(fig)


def _band(ax, x, y, lo, hi, label, kind, color=None):
    line, = ax.plot(x, y, label=label, color=color, **_style(kind))
    if lo is not None and hi is not None:
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)


def gini_vs_batch(panels: dict[str, list[dict]]) -> bytes:
    """Per-step Gini against batch size: {model: [{label, kind, batch[], mean[], lo[], hi[]}]}."""
    fig, axes = _grid(len(panels))
    for ax, (title, lines) in zip(axes, panels.items()):
        for ln in lines:
            _band(ax, ln["batch"], ln["mean"], ln.get("lo"), ln.get("hi"), ln["label"], ln["kind"])
        ax.set_xscale("log", base=2)
        ax.set(title=title, xlabel="batch size B (sequences per step)", ylabel="per-step Gini (mean)")
        ax.legend(fontsize=7)
    return png(fig)


def ep_lines(panels: dict[str, list[dict]], ylabel: str) -> bytes:
    """A metric against EP degree N with intervals: {panel: [{label, kind, ep[], mean[], lo[], hi[]}]}."""
    fig, axes = _grid(len(panels))
    for ax, (title, lines) in zip(axes, panels.items()):
        for ln in lines:
            _band(ax, ln["ep"], ln["mean"], ln.get("lo"), ln.get("hi"), ln["label"], ln["kind"])
        ax.set_xscale("log", base=2)
        ax.set(title=title, xlabel="EP degree N", ylabel=ylabel)
        ax.legend(fontsize=7)
    return png(fig)


def bands_chart(models: list[str], points: list[tuple[int, float, str, str]], band_of: dict[str, str],
                low: float, high: float) -> bytes:
    """Real-text (filled) and mock (hollow) Gini per model on one axis, with the band thresholds.

    points: (model index, gini, condition, kind); band_of: {model: band name}.
    """
    plt = _plt()
    colors = {"data-resilient": "tab:green", "intermediate": "tab:orange", "persistently concentrated": "tab:red"}
    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.45 * len(models)))
    ax.axvspan(0, low, color="tab:green", alpha=0.07)
    ax.axvspan(high, 1, color="tab:red", alpha=0.07)
    ax.axvline(low, color="tab:green", linestyle=":", linewidth=1)
    ax.axvline(high, color="tab:red", linestyle=":", linewidth=1)
    for i, g, cond, kind in points:
        c = colors.get(band_of.get(models[i], ""), "0.4")
        ax.scatter([g], [i], s=28, marker="o" if kind == "real" else "x", color=c, zorder=3)
        ax.annotate(cond, (g, i), textcoords="offset points", xytext=(0, 6), fontsize=6, ha="center")
    gmax = max([p[1] for p in points if np.isfinite(p[1])] + [high]) * 1.15
    ax.set_yticks(range(len(models)), [f"{m}\n({band_of.get(m, 'no band')})" for m in models], fontsize=7)
    ax.set(xlim=(0, gmax), ylim=(-0.7, len(models) - 0.3), xlabel="Gini (o real text, x mock)",
           title=f"bands: <= {low} data-resilient, >= {high} on every real condition concentrated")
    return png(fig)


def grouped_bars(categories: list[str], groups: dict[str, list[float]], ylabel: str, title: str) -> bytes:
    """Grouped bars: one cluster per category, one bar per group ({group: values[len(categories)]})."""
    plt = _plt()
    n = max(1, len(groups))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(categories) + 2), 3.6))
    x = np.arange(len(categories))
    for k, (name, vals) in enumerate(groups.items()):
        ax.bar(x + (k - (n - 1) / 2) * width, np.asarray(vals, dtype=float), width, label=name)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_xticks(x, categories, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    return png(fig)


def measured_vs_predicted(panels: dict[str, list[dict]], ylabel: str = "receiver skew") -> bytes:
    """Measured (solid, with interval) vs predicted (dotted) per EP degree:
    {panel: [{label, ep[], measured[], lo[], hi[], predicted[]}]}."""
    fig, axes = _grid(len(panels))
    for ax, (title, lines) in zip(axes, panels.items()):
        for ln in lines:
            _band(ax, ln["ep"], ln["measured"], ln.get("lo"), ln.get("hi"), f"{ln['label']} measured", "real")
            ax.plot(ln["ep"], ln["predicted"], linestyle=":", marker="^", markersize=3,
                    color=ax.lines[-1].get_color(), label=f"{ln['label']} NeuSim")
        ax.set_xscale("log", base=2)
        ax.set(title=title, xlabel="EP degree N", ylabel=ylabel)
        ax.legend(fontsize=7)
    return png(fig)
