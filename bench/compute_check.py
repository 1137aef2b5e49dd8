"""The routing-only half of bench/bench_compute.py (``--sets routing``): the GPU's shipped calibration on
real routing it was never fitted on, per kernel and per expert activation, its notes and its figure.
Pure functions of the measurements ("raw"), so ``--refit`` reruns them on a committed result.
"""

from __future__ import annotations

import numpy as np

from compute_fits import KERNELS, in_target, routing_rows


def shipped_on_routing(raw: dict) -> dict:
    """A call that measured routing but no grid (``--sets routing``): each kernel's shipped calibration for
    this GPU (``resolve_model``; another GPU's is labelled so) on the real routing, never fitted here ->
    {kernel: {calibration, target: summary, by_act: {act: summary}, table, target_errors (per target rank, in
    ``routing_rows`` order: what the figure draws)}}: a blind test of what ships."""
    from dodoco.compute.holdout import error_table, held_out, summary
    from dodoco.compute.model import resolve_model

    out = {}
    for kernel in KERNELS:
        real = routing_rows(raw, kernel, "routing")
        if not real:
            continue
        model = resolve_model(raw["facts"]["device"], kernel)
        err = held_out(model, real)
        label = model.label(raw["facts"]["device"])
        target = np.array([in_target(r) for r in real])
        acts = np.array([r["shape"].act for r in real])
        out[kernel] = {
            "calibration": label,
            "target": summary(err[target]),
            "by_act": {a: summary(err[target & (acts == a)]) for a in sorted(set(acts.tolist()))},
            "table": error_table(real, {label: err}),
            "target_errors": [float(e) for e in err[target]],
        }
    return out


def shipped_notes(res: dict) -> list[str]:
    """Notes of ``shipped_on_routing``."""
    notes = []
    for kernel, r in res.items():
        t = r["target"]
        if t["n"]:
            notes.append(
                f"{kernel}, shipped calibration ({r['calibration']}) on this call's real routing, never fitted on it, "
                f"target ranks: median {100 * t['median_abs_err']:.1f}%, p90 {100 * t['p90_abs_err']:.1f}% over {t['n']}; "
                + ", ".join(
                    f"{a} experts {100 * v['median_abs_err']:.1f}% / {100 * v['p90_abs_err']:.1f}% (n {v['n']}, "
                    f"bias {100 * v['bias']:+.1f}%)"
                    for a, v in r["by_act"].items()
                    if v["n"]
                )
            )
    return notes


def check_figure(raw: dict) -> bytes:
    """Per kernel: predicted (shipped calibration) vs measured on the target ranks, by expert activation, and
    the cumulative share of ranks within each absolute error (the errors ``shipped_on_routing`` recorded)."""
    panels = []
    for kernel, res in raw["shipped_check"].items():
        real = [r for r in routing_rows(raw, kernel, "routing") if in_target(r)]
        ms = np.array([r["ms"] for r in real])
        acts = np.array([r["shape"].act for r in real])
        panels.append((f"{kernel}: shipped calibration", {"this call": (ms, np.asarray(res["target_errors"]), acts)}))
    return blind_figure(
        panels,
        f"Shipped expert-compute calibrations on {raw['facts']['device']}: real routing never fitted on "
        "(128-8192 tokens per rank, EP 4-64); grey band and line: 10%",
    )


def others_figure(raw: dict) -> bytes:
    """A grid-only call's fits on other calls' routing (``other_of``'s per-rank records): the same panels."""
    panels = []
    for kernel, fit in raw["fits"].items():
        series = {
            o["file"]: (np.asarray(o[kernel]["ms"]), np.asarray(o[kernel]["errors"]), np.asarray(o[kernel]["acts"]))
            for o in raw["other"]
            if o[kernel].get("ms")
        }
        panels.append((f"{kernel}: {fit['form']}, tile {fit['tile_m']}", series))
    return blind_figure(
        panels,
        f"Expert-compute calibrations fitted on {raw['facts']['device']}'s grid alone, on other calls' real routing "
        "(128-8192 tokens per rank, EP 4-64); grey band and line: 10%",
    )


def blind_figure(panels: list, title: str) -> bytes:
    """Two axes per panel (title, {series name: (measured ms [n], errors [n], acts [n])}): predicted vs
    measured coloured by expert activation, and each series' and activation's cumulative absolute error."""
    from dodoco.report.plots import grid, png
    from dodoco.report.style import suptitle

    colors = {"swiglu": "#4477aa", "relu2": "#cc6677"}
    fig, axes = grid(2 * len(panels), 3.6, 3.2, ncols=2)
    for k, (name, series) in enumerate(panels):
        lo, hi = np.inf, 0.0
        for s, (ms, err, acts) in series.items():
            for act in sorted(set(acts.tolist())):
                m = acts == act
                axes[2 * k].loglog(ms[m], ms[m] * (1 + err[m]), ".", markersize=2, alpha=0.4, color=colors.get(act))
                e = np.sort(np.abs(err[m]))
                label = f"{act} ({e.size})" if len(series) == 1 else f"{s.split('.json')[0]}: {act} ({e.size})"
                axes[2 * k + 1].plot(100 * e, np.arange(1, e.size + 1) / e.size, label=label)
            lo, hi = min(lo, ms.min()), max(hi, ms.max())
        lim = [lo * 0.8, hi * 1.2]
        axes[2 * k].plot(lim, lim, color="black", linewidth=0.8)
        axes[2 * k].fill_between(lim, [x * 0.9 for x in lim], [x * 1.1 for x in lim], color="0.85", zorder=0)
        axes[2 * k].set(title=name, xlabel="measured (ms)", ylabel="predicted (ms)")
        axes[2 * k + 1].axvline(10, color="0.6", linewidth=0.8)
        axes[2 * k + 1].set(xscale="log", xlim=(0.1, 100), title=f"{name.split(':')[0]}: error")
        axes[2 * k + 1].set(xlabel="absolute error (%)", ylabel="share of ranks")
        axes[2 * k + 1].legend(fontsize=6, frameon=False)
    suptitle(fig, title)
    return png(fig)
