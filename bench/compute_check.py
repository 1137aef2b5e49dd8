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
    from dodoco.report.plots import grid, png
    from dodoco.report.style import suptitle

    kernels = list(raw["shipped_check"])
    fig, axes = grid(2 * len(kernels), 3.6, 3.2, ncols=2)
    for k, kernel in enumerate(kernels):
        real = [r for r in routing_rows(raw, kernel, "routing") if in_target(r)]
        ms = np.array([r["ms"] for r in real])
        err = np.asarray(raw["shipped_check"][kernel]["target_errors"])
        acts = np.array([r["shape"].act for r in real])
        for act, color in zip(sorted(set(acts.tolist())), ("#4477aa", "#cc6677")):
            m = acts == act
            axes[2 * k].loglog(ms[m], ms[m] * (1 + err[m]), ".", markersize=2, alpha=0.5, color=color, label=act)
            e = np.sort(np.abs(err[m]))
            axes[2 * k + 1].plot(100 * e, np.arange(1, e.size + 1) / e.size, color=color, label=f"{act} ({e.size})")
        lim = [ms.min() * 0.8, ms.max() * 1.2]
        axes[2 * k].plot(lim, lim, color="black", linewidth=0.8)
        axes[2 * k].fill_between(lim, [x * 0.9 for x in lim], [x * 1.1 for x in lim], color="0.85", zorder=0)
        axes[2 * k].set(title=f"{kernel}: shipped calibration", xlabel="measured (ms)", ylabel="predicted (ms)")
        axes[2 * k + 1].axvline(10, color="0.6", linewidth=0.8)
        axes[2 * k + 1].set(xscale="log", xlim=(0.1, 100), title=f"{kernel}: error", xlabel="absolute error (%)")
        axes[2 * k + 1].set(ylabel="share of ranks")
        axes[2 * k + 1].legend(fontsize=7, frameon=False)
    suptitle(
        fig,
        f"Shipped expert-compute calibrations on {raw['facts']['device']}: real routing never fitted on "
        "(128-8192 tokens per rank, EP 4-64); grey band and line: 10%",
    )
    return png(fig)
