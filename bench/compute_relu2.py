"""The relu2 set of bench/bench_compute.py: Nemotron's routing at its real ungated ReLU^2 experts, each rank
beside its SwiGLU twin and Megatron-Core's fused MoE. Pure functions of the measurements ("raw"): the
calibration's held-out error on them, the measured ratios, their notes and their figure panels.
"""

from __future__ import annotations

import numpy as np

from compute_fits import KERNELS, in_target


def _same_rank(r: dict) -> tuple:
    return tuple(r.get(k) for k in ("model", "seq_len", "N", "B", "step", "layer", "rank", "which", "control"))


def relu2_of(raw: dict, fits: dict) -> dict:
    """The "relu2" set (Nemotron's routing at its own ungated ReLU^2 experts): each kernel's model (this
    run's grid fit, else the GPU's shipped calibration) on it, held out; measured ReLU^2 / SwiGLU time of
    the same ranks and kernel; measured Megatron fused MoE / grouped_mm time of the same ranks."""
    from dodoco.compute.features import ExpertShape
    from dodoco.compute.holdout import held_out, summary
    from dodoco.compute.model import ComputeModel, resolve_model

    rows = [r for r in raw["rows"] if r["set"] == "relu2" and r.get("act") == "relu2" and r["ms"] > 0]
    twins = [r for r in raw["rows"] if r["set"] == "relu2" and r.get("act") == "swiglu" and r["ms"] > 0]
    if not rows:
        return {}
    out = {"ranks": len({_same_rank(r) for r in rows}), "shape": ExpertShape.of(rows[0]).label(), "model": {}}
    out["relu2_over_swiglu"] = {}
    for kernel in KERNELS:
        mine = [{**r, "shape": ExpertShape.of(r)} for r in rows if r["kernel"] == kernel and in_target(r)]
        model = (
            ComputeModel.from_dict(fits[kernel]) if kernel in fits else resolve_model(raw["facts"]["device"], kernel)
        )
        if mine:
            out["model"][kernel] = {
                **summary(held_out(model, mine)),
                "calibration": model.label(raw["facts"]["device"]),
            }
        swiglu = {_same_rank(r): r["ms"] for r in twins if r["kernel"] == kernel}
        ratio = [r["ms"] / swiglu[_same_rank(r)] for r in rows if r["kernel"] == kernel and _same_rank(r) in swiglu]
        out["relu2_over_swiglu"][kernel] = _spread(ratio)
    gmm = {_same_rank(r): r["ms"] for r in rows if r["kernel"] == "grouped_mm"}
    meg = [r["ms"] / gmm[_same_rank(r)] for r in rows if r["kernel"] == "megatron" and _same_rank(r) in gmm]
    out["megatron_over_grouped_mm"] = _spread(meg)
    return out


def _spread(x) -> dict:
    """{n, median, p10, p90} of measured ratios (n 0: none)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {"n": 0}
    return {"n": int(x.size), **{k: float(np.quantile(x, q)) for k, q in (("median", 0.5), ("p10", 0.1), ("p90", 0.9))}}


def relu2_notes(r: dict) -> list[str]:
    """Notes of ``relu2_of``'s result."""
    if not r:
        return []
    notes = [
        f"relu2 (Nemotron-30B's ungated ReLU^2 experts on the zoo's nemotron_h routing, {r['ranks']} ranks, "
        f"validation only), {k}: {m['calibration']}: median {100 * m['median_abs_err']:.1f}%, p90 "
        f"{100 * m['p90_abs_err']:.1f}% over {m['n']} target ranks"
        for k, m in r["model"].items()
        if m["n"]
    ]
    notes += [
        f"relu2, measured: ReLU^2 / SwiGLU time of the same ranks through {k} ({r['shape']}): median "
        f"{s['median']:.3f} (p10 {s['p10']:.3f}, p90 {s['p90']:.3f}, {s['n']} ranks)"
        for k, s in r["relu2_over_swiglu"].items()
        if s["n"]
    ]
    m = r["megatron_over_grouped_mm"]
    if m["n"]:
        notes.append(
            f"relu2, measured: Megatron-Core's fused MoE (permute and unpermute included) / grouped_mm of the "
            f"same ranks: median {m['median']:.3f} (p10 {m['p10']:.3f}, p90 {m['p90']:.3f}, {m['n']} ranks)"
        )
    return notes


def relu2_panels(axes, raw: dict) -> None:
    """Two panels of the relu2 set: each kernel's time of a ReLU^2 rank against grouped_mm's of the same rank
    (Megatron's fused MoE and the loop), and each SwiGLU twin against its ReLU^2 rank (grouped_mm)."""
    rows = [r for r in raw["rows"] if r["set"] == "relu2" and r["ms"] > 0]
    ms = {(r.get("act"), r["kernel"], _same_rank(r)): r["ms"] for r in rows}
    base = {k[2]: v for k, v in ms.items() if k[:2] == ("relu2", "grouped_mm")}
    x = np.array(list(base.values()))
    for ax, pairs in (
        (axes[0], [("megatron", ("relu2", "megatron"), "#cc6677"), ("loop", ("relu2", "loop"), "#117733")]),
        (axes[1], [("SwiGLU twin (grouped_mm)", ("swiglu", "grouped_mm"), "#4477aa")]),
    ):
        for label, key, color in pairs:
            pts = [(base[k], ms[(*key, k)]) for k in base if (*key, k) in ms]
            if pts:
                ax.loglog(*zip(*pts), ".", markersize=3, color=color, label=label)
        lim = [x.min() * 0.8, x.max() * 1.5]
        ax.plot(lim, lim, color="black", linewidth=0.8)
        ax.set(xlabel="ReLU^2 rank through grouped_mm (ms)", ylabel="same rank (ms)")
        ax.legend(fontsize=7, frameon=False)
    axes[0].set_title("ReLU^2 experts: Megatron fused MoE and loop")
    axes[1].set_title("the same ranks timed as SwiGLU")
