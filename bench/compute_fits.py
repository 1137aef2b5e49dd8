"""The analysis half of bench/bench_compute.py: each kernel's model calibrated on the grid alone and
checked on real routing (beside the tokens-only model and the old equal-groups table), the measured
routing-vs-even comparison, the notes and the figure. Pure functions of the measurements ("raw"),
so ``bench_compute.py --refit`` reruns them on a committed result without a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: the calibration grid's expert shapes: the paper's four SwiGLU shapes and, since 2026-12-07, Nemotron-30B's
#: ungated ReLU^2 experts (a grid without them fitted ReLU^2 ranks with a bias of +7%)
GRID_SHAPES = ("deepseek-v3", "deepseek-v2-lite", "qwen3-30b-a3b", "qwen3.5-35b-a3b", "nemotron-30b")
KERNELS = ("grouped_mm", "loop")


def _info(raw: dict) -> dict:
    """What a calibration file records of the run it came from."""
    info = {k: raw["facts"].get(k) for k in ("torch", "cuda")}
    info.update(
        date=raw["date"][:10],
        dodoco=raw["versions"].get("dodoco"),
        git=raw["versions"].get("git"),
        peaks=raw.get("peaks"),
        grid="dodoco.compute.grid.calibration_grid() at "
        + ", ".join(dict.fromkeys(r["shape_name"] for r in raw["rows"] if r["set"] == "grid")),
    )
    return info


def _calibrated(raw: dict, grid: list[dict], kernel: str) -> tuple:
    """(the model chosen by held-out error on the grid, the tokens-only model fitted on the same grid)."""
    import dataclasses

    from dodoco.compute.features import ExpertShape, features_many, pad_loads
    from dodoco.compute.fit import FORMS, fit_form
    from dodoco.compute.model import calibrate

    shapes = [ExpertShape.of(r) for r in grid]
    ms = [r["ms"] for r in grid]
    model = calibrate(
        [r["loads"] for r in grid],
        shapes,
        ms,
        kernel=kernel,
        device=raw["facts"]["device"],
        sms=raw["facts"]["sms"],
        info=_info(raw),
    )
    t, v = pad_loads([r["loads"] for r in grid])
    tok = fit_form(FORMS["tokens"], features_many(t, v, shapes), ms)
    return model, dataclasses.replace(model, form="tokens", coef=tok, info={})


def fit_all(raw: dict) -> dict:
    """Calibrate each kernel on the grid alone, check it on the real routing, beside the tokens-only model."""
    from dodoco.compute.holdout import error_table, held_out, routing_vs_even, summary

    fits, tables, errors_of, controls, evens, forms = {}, {}, {}, {}, {}, {}
    for kernel in KERNELS:
        grid = [r for r in raw["rows"] if r["set"] == "grid" and r["kernel"] == kernel and r["ms"] > 0]
        real = routing_rows(raw, kernel, "routing")
        if len(grid) < 20:
            continue
        model, tokens_only = _calibrated(raw, grid, kernel)
        errs = (
            {
                f"dodoco ({model.form}, tile {model.tile_m})": held_out(model, real),
                "tokens only (grid-fitted)": held_out(tokens_only, real),
                "equal-groups table (the old model)": _old_table(grid, real),
            }
            if real
            else {}
        )
        for name, e in errs.items():
            for r, x in zip(real, e):
                r.setdefault("errors", {})[name] = float(x)
        balanced = routing_rows(raw, kernel, "balanced")
        if balanced:
            controls[kernel] = summary(held_out(model, [r for r in balanced if in_target(r)]))
            evens[kernel] = routing_vs_even(_busiest_pairs(real, balanced))
        fits[kernel] = model.to_dict()
        forms[kernel] = forms_on_routing(raw, grid, model, [r for r in real if in_target(r)])
        tables[kernel] = error_table(real, errs) if real else []
        target = [i for i, r in enumerate(real) if in_target(r)]
        errors_of[kernel] = {name: [float(e[i]) for i in target] for name, e in errs.items()}
    return {
        "fits": fits,
        "tables": tables,
        "tables_err": errors_of,
        "balanced_controls": controls,
        "routing_vs_even": evens,
        "forms_on_routing": forms,
    }


def forms_on_routing(raw: dict, grid: list[dict], model, real: list[dict], top: int = 6) -> list[dict]:
    """Diagnosis, not selection: the ``top`` forms by held-out p90 on the grid (the selection's order),
    each fitted on the grid and scored on the target ranks of real routing -> rows {form, tile_m,
    grid_p90, routing: summary}. The chosen form stays the grid's choice."""
    import dataclasses

    from dodoco.compute.features import ExpertShape, features_many, pad_loads
    from dodoco.compute.fit import FORMS, fit_form
    from dodoco.compute.holdout import held_out, summary

    shapes = [ExpertShape.of(r) for r in grid]
    t, v = pad_loads([r["loads"] for r in grid])
    y = np.array([r["ms"] for r in grid])
    out = []
    for sel in sorted(model.info["selection"], key=lambda r: (r["p90_abs_err"], r["median_abs_err"]))[:top]:
        coef = fit_form(FORMS[sel["form"]], features_many(t, v, shapes, sel["tile_m"], 128, raw["facts"]["sms"]), y)
        m = dataclasses.replace(model, form=sel["form"], tile_m=sel["tile_m"], coef=coef)
        row = {"form": sel["form"], "tile_m": sel["tile_m"], "grid_p90": sel["p90_abs_err"]}
        out.append({**row, "routing": summary(held_out(m, real)) if real else {"n": 0}})
    return out


def _busiest_pairs(real: list[dict], balanced: list[dict]) -> list[tuple]:
    """(busiest rank of real routing, its balanced control) measured in the same call, matched on every key."""
    skip = {"control", "loads", "ms", "p10_ms", "p90_ms", "reps", "errors", "shape"}
    key = lambda r: tuple(sorted((k, str(v)) for k, v in r.items() if k not in skip))  # noqa: E731
    ctl = {key(r): r for r in balanced}
    return [(r, ctl[key(r)]) for r in real if r["which"] == "busiest" and key(r) in ctl]


def in_target(r: dict) -> bool:
    return 128 <= r["tokens"] <= 8192 and 4 <= r.get("N", 0) <= 64


def routing_rows(raw: dict, kernel: str, control: str) -> list[dict]:
    """The measured ranks of real routing (control "routing") or their balanced controls ("balanced")."""
    from dodoco.compute.features import ExpertShape

    return [
        {**r, "shape": ExpertShape.of(r)}
        for r in raw["rows"]
        if r["set"] == "routing" and r.get("control") == control and r["kernel"] == kernel and r["ms"] > 0
    ]


def _old_table(grid: list[dict], real: list[dict]) -> np.ndarray:
    """DODOCO's old expert model on the same measurements: per shape, the grid's 16 equal groups of t
    tokens as a table of ms per expert, interpolated in t and summed over a rank's experts."""
    from dodoco.compute.features import ExpertShape

    out = np.full(len(real), np.nan)
    for i, r in enumerate(real):
        eq = sorted(
            (x["loads"][0], x["ms"] / 16)
            for x in grid
            if x["family"] == "equal" and len(x["loads"]) == 16 and ExpertShape.of(x) == r["shape"]
        )
        if len(eq) < 2:
            continue
        t, ms = np.array([0.0] + [a for a, _ in eq]), np.array([0.0] + [b for _, b in eq])
        loads = np.asarray(r["loads"], dtype=np.float64)
        per = np.where(loads > 0, np.interp(loads, t, ms), 0.0)
        out[i] = (per.sum() - r["ms"]) / r["ms"]
    return out


def _measured_notes(res: dict) -> list[str]:
    """Per kernel: the balanced controls' error, routing against its even spread, the forms diagnosis."""
    notes = []
    for kernel, c in res.get("balanced_controls", {}).items():
        if c["n"]:
            notes.append(
                f"{kernel}, balanced controls (each target rank's tokens spread evenly, not routing): median "
                f"{100 * c['median_abs_err']:.1f}%, p90 {100 * c['p90_abs_err']:.1f}% over {c['n']} ranks"
            )
    for kernel, bands in res.get("routing_vs_even", {}).items():
        a = bands[0]
        if a["n"]:
            notes.append(
                f"{kernel}, measured: the busiest rank of real routing ran faster than its own tokens spread evenly "
                f"over its experts in {a['faster']} of {a['n']} ranks (down to {a['min_ratio']:.2f}x); by band: "
                + ", ".join(f"{b['band']} {b['faster']}/{b['n']}" for b in bands[1:] if b["n"])
            )
    for kernel, rows in res.get("forms_on_routing", {}).items():
        rows = [f for f in rows if f["routing"]["n"]]
        if not rows:  # a grid-only call: no routing to diagnose on
            continue
        notes.append(
            f"{kernel}, diagnosis (not selection): the grid's best forms by held-out p90, each on the real routing: "
            + "; ".join(
                f"{f['form']} tile {f['tile_m']} (grid p90 {100 * f['grid_p90']:.1f}%) "
                f"{100 * f['routing']['median_abs_err']:.1f}% / {100 * f['routing']['p90_abs_err']:.1f}%"
                for f in rows
            )
        )
    return notes


def _device_notes(raw: dict) -> list[str]:
    """Where and how the call ran: a dry run first (CPU, or shapes divided by --scale), then the device."""
    f = raw["facts"]
    notes = []
    if raw.get("scale", 1) > 1 or not f.get("cuda"):
        kind = "scaled" if f.get("cuda") else "CPU"
        notes.append(
            f"{kind} dry run of the whole path on {f['device']}: expert shapes divided by {raw.get('scale', 1)}; "
            "nothing here is a calibration of a GPU or an error at the models' shapes"
        )
    return notes + [
        f"measured on {f['device']} ({f['sms']} SMs, torch {f['torch']}, CUDA {f.get('cuda')}) on "
        f"{raw['date'][:10]} by bench/bench_compute.py in {raw.get('seconds', 0):.0f} s"
        + (f", GPU {f['gpu_uuid']} on host {f.get('host')}" if f.get("gpu_uuid") else ""),
        f"peaks measured here: {raw['peaks']['tflops']:.0f} TFLOP/s bf16, {raw['peaks']['hbm_GBps']:.0f} GB/s copy",
        f"kernels against a float64 reference: {raw['check']}",
        raw["megatron"],
    ]


def notes_of(raw: dict, res: dict) -> list[str]:
    notes = _device_notes(raw)
    n = {s: sum(1 for r in raw["rows"] if r["set"] == s) for s in ("grid", "routing")}
    texts = sorted({str(r.get("condition")) for r in raw["rows"] if r["set"] == "routing"})
    notes.append(
        f"{n['grid']} grid timings (calibration) and {n['routing']} real-routing timings (validation only: "
        f"zoo routers on {', '.join(texts) or 'no text'}, busiest/median/lightest rank and each one's balanced control)"
    )
    for kernel, t in res["tables"].items():
        for row in t[:3]:
            if row["n"]:
                notes.append(
                    f"{kernel}, {row['model']}, {row['group']}: median {100 * row['median_abs_err']:.1f}%, "
                    f"p90 {100 * row['p90_abs_err']:.1f}% over {row['n']} ranks"
                )
    notes += _measured_notes(res)
    if raw.get("overhead"):
        notes.append(
            "replay overhead (measure_loads / direct call, median ratio): "
            f"{np.median([o['ratio'] for o in raw['overhead']]):.4f}"
        )
    notes += [f"failed: {f}" for f in raw.get("failures", [])]
    if raw.get("refit"):
        notes.append(
            f"{'forms fitted' if n['grid'] else 'scored'} again on {raw['refit']['date']} from these measurements "
            "(bench_compute.py --refit, "
            f"git {str(raw['refit']['git'])[:10]})"
        )
    if (raw.get("refit") or {}).get("sets"):
        notes.append(
            f"this file keeps the call's {', '.join(raw['refit']['sets'])} rows only (--refit --sets); "
            "the call's other rows are in the file it was refitted from"
        )
    for o in raw.get("other") or []:
        notes += [
            f"{k} fits of this run on the real routing of {o['file']} ({o['device']}, {o['date'][:10]}, peaks "
            f"{o['peaks']}): median {100 * o[k]['median_abs_err']:.1f}%, p90 {100 * o[k]['p90_abs_err']:.1f}% "
            f"over {o[k]['n']} ranks"
            + "".join(
                f"; {a} experts {100 * v['median_abs_err']:.1f}% / {100 * v['p90_abs_err']:.1f}% (n {v['n']}, "
                f"bias {100 * v['bias']:+.1f}%)"
                for a, v in (o[k].get("by_act") or {}).items()
                if len(o[k]["by_act"]) > 1
            )
            for k in KERNELS
            if k in o
        ]
    if raw.get("truncated"):
        notes.append("the time budget ran out: " + raw["truncated"])
    return notes


def figure_of(raw: dict) -> bytes:
    """Per kernel: measured vs predicted on the real routing (the model fitted on the grid alone), and the
    cumulative share of ranks within each absolute error, dodoco's model beside the two baselines; then the
    relu2 set's two panels where the run measured it."""
    from dodoco.compute.model import ComputeModel
    from dodoco.compute.holdout import held_out
    from dodoco.report.plots import grid, png
    from dodoco.report.style import legend, suptitle

    extra = 2 if raw.get("relu2") else 0
    fig, axes = grid(2 * len(raw["fits"]) + extra, 3.6, 3.2, ncols=2)
    if extra:
        from compute_relu2 import relu2_panels  # the relu2 set's two panels, last

        relu2_panels(axes[-2:], raw)
    for k, (kernel, fit) in enumerate(raw["fits"].items()):
        real = [r for r in routing_rows(raw, kernel, "routing") if in_target(r)]
        model = ComputeModel.from_dict(fit)
        ms = np.array([r["ms"] for r in real])
        pred = ms * (1 + held_out(model, real))
        ax = axes[2 * k]
        ax.loglog(ms, pred, ".", markersize=2, color="#4477aa", alpha=0.5)
        lim = [ms.min() * 0.8, ms.max() * 1.2]
        ax.plot(lim, lim, color="black", linewidth=0.8)
        ax.fill_between(lim, [x * 0.9 for x in lim], [x * 1.1 for x in lim], color="0.85", zorder=0)
        ax.set(title=f"{kernel}: {model.form}, tile {model.tile_m}", xlabel="measured (ms)", ylabel="predicted (ms)")
        ax = axes[2 * k + 1]
        for name, err in raw["tables_err"][kernel].items():
            e = np.sort(np.abs(np.asarray(err, dtype=float)[np.isfinite(err)]))
            ax.plot(100 * e, np.arange(1, e.size + 1) / e.size, label=name)
        ax.axvline(10, color="0.6", linewidth=0.8)
        ax.set(
            xscale="log",
            xlim=(0.1, 200),
            title=f"{kernel}: held-out error",
            xlabel="absolute error (%)",
            ylabel="share of ranks",
        )
    suptitle(
        fig,
        f"Expert compute on {raw['facts']['device']}: real routing never used for calibration "
        "(128-8192 tokens per rank, EP 4-64); grey band and line: 10%",
    )
    names = ["dodoco (each kernel's form: panel titles)", *list(raw["tables_err"][next(iter(raw["tables_err"]))])[1:]]
    legend(fig, [(n, {"color": c}) for n, c in zip(names, ("C0", "C1", "C2"))])
    return png(fig)


def read_result(path: Path) -> dict:
    """A compute-<gpu>.json of an earlier run; gzipped (``.json.gz``, how results are kept) or not."""
    import gzip

    data = path.read_bytes()
    return json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)


def write_gz_result(path: Path, raw: dict) -> None:
    """A call's measurements and results, gzipped (what ``read_result`` reads back), atomically."""
    import gzip

    from dodoco.store.atomic import json_safe, write_bytes

    write_bytes(path, gzip.compress(json.dumps(json_safe(raw), indent=1).encode(), mtime=0))


def other_of(raw: dict, path: Path) -> dict:
    """This run's fits (made here) on another run's real routing (another device call: the same GPU kind,
    maybe another host, or another GPU, whose note names it): one summary per kernel."""
    from dodoco.compute.model import ComputeModel
    from dodoco.compute.holdout import held_out, summary

    other = read_result(path)
    fits = fit_all(raw)["fits"]
    pk = other["peaks"]
    out = {
        "file": path.name,
        "date": other["date"],
        "device": other["facts"]["device"],
        "peaks": f"{pk['tflops']:.0f} TFLOP/s, {pk['hbm_GBps']:.0f} GB/s",
    }
    for kernel, fit in fits.items():
        rows = [r for r in routing_rows(other, kernel, "routing") if in_target(r)]
        err = held_out(ComputeModel.from_dict(fit), rows)
        acts = np.array([r["shape"].act for r in rows])
        out[kernel] = summary(err)
        out[kernel]["by_act"] = {a: summary(err[acts == a]) for a in sorted(set(acts.tolist()))}
        out[kernel].update(ms=[r["ms"] for r in rows], errors=err.tolist(), acts=acts.tolist())  # the figure's
    return out
