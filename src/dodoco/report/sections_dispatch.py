"""Report sections on dispatch cost, from JSON attached with ``dodoco report --attach``:
replay results (``bench/bench_replay.py`` / ``dodoco replay``: keys ``replays`` and ``validation``)
and simulate tables (``dodoco simulate --json``: rows with ``N`` and ``dispatch_ms``).

Each is ``(runs, ctx) -> Section`` (report/build.py); with nothing attached they are skipped.
"""

from __future__ import annotations

import json

import numpy as np

import dodoco.report.sections_ep  # noqa: F401  (registers the routing sections first: these come after)
from dodoco.errors import DodocoError
from dodoco.report import plots
from dodoco.report.build import Figure, Section, SkipSection, Table, register_section
from dodoco.report.html import esc


def _attached(ctx, kind: str) -> list[tuple[str, object]]:
    """(file name, parsed JSON) of the attachments of one kind: "replay" or "simulate"."""
    out = []
    for path in ctx.attachments:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DodocoError(f"attachment {path} is not readable JSON ({exc}): attach replay or simulate results")
        is_replay = isinstance(data, dict) and "replays" in data and "validation" in data
        is_sim = isinstance(data, list) and data and isinstance(data[0], dict) and "dispatch_ms" in data[0]
        if (kind == "replay" and is_replay) or (kind == "simulate" and is_sim):
            out.append((path.name, data))
    return out


def _device(data: dict) -> str:
    d = data.get("device", {})
    return f"{data.get('machine', '?')}: {d.get('count', '?')} x {d.get('name', '?')}, NCCL {d.get('nccl', '?')}"


def _sweep_figure(replays: list[dict], title: str) -> bytes:
    """busbw against bytes per rank, one line per N (the raw all_to_all_single sweep)."""
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for rep in replays:
        sweep = rep.get("sweep") or []
        if sweep:
            ax.plot([s["bytes_per_rank"] for s in sweep], [s["busbw_GBps"] for s in sweep], marker="o",
                    markersize=3, label=f"N = {rep['N']}")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="bytes per rank", ylabel="busbw (GB/s)", title=title)
    ax.legend(fontsize=7)
    return plots.png(fig)


def _validation_figure(rows: list[dict], title: str) -> bytes:
    """Simulator: predicted against measured dispatch time, per case kind, with the y = x line."""
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    kinds = sorted({r["cases"] for r in rows})
    for kind in kinds:
        pts = [r for r in rows if r["cases"] == kind]
        ax.scatter([p["measured_ms"] for p in pts], [p["predicted_ms"] for p in pts], s=18,
                   label=f"{kind}")
    lim = [0, 1.08 * max(max(r["measured_ms"], r["predicted_ms"]) for r in rows)]
    ax.plot(lim, lim, color="0.4", linewidth=0.8)
    ax.set(xlim=lim, ylim=lim, xlabel="measured dispatch (ms)", ylabel="predicted (ms)", title=title)
    ax.legend(fontsize=6)
    return plots.png(fig)


def replay_section(runs, ctx) -> Section:
    """Dispatch cost measured on GPUs: replays of real, mock and balanced traffic, NCCL sweep, simulator error."""
    attached = _attached(ctx, "replay")
    if not attached:
        raise SkipSection("no replay results attached (dodoco report ... --attach bench/results/replay-*.json)")
    section = Section("Dispatch cost on GPUs (replay)")
    html = []
    for name, data in attached:
        stem = name.removesuffix(".json")
        replays = data["replays"]
        summary = [dict(s) for rep in replays for s in rep.get("summary", [])]
        html.append(f"<p><b>{esc(name)}</b> ({esc(_device(data))}). Dispatch and combine of H-wide rows, "
                    "max over ranks per iteration, median and p10/p90 over iterations; the balanced control "
                    "moves the same bytes with uniform splits.</p>")
        Ns = sorted({s["N"] for s in summary})
        kinds = ("real", "mock", "balanced")
        groups = {k: [float(np.mean([s["dispatch_ms"] for s in summary if s["N"] == n and s["kind"] == k] or [np.nan]))
                      for n in Ns] for k in kinds}
        section.figures.append(Figure(f"dispatch-{stem}", plots.grouped_bars(
            [f"N = {n}" for n in Ns], groups, "dispatch (ms)", "real, mock and balanced traffic"),
            f"{name}: dispatch time by EP degree"))
        section.figures.append(Figure(f"sweep-{stem}", _sweep_figure(replays, "uniform all_to_all_single sweep"),
                                      f"{name}: NCCL busbw against message size"))
        validation = data.get("validation") or []
        if validation:
            section.figures.append(Figure(f"simulator-{stem}", _validation_figure(validation, "simulator"),
                                          f"{name}: simulator predicted vs measured"))
            section.tables.append(Table(f"simulator-{stem}", validation, f"{name}: simulator error by case",
                                        ["N", "cases", "n", "recv_skew", "measured_ms", "predicted_ms",
                                         "err_pct_median", "naive_max_err_pct", "volume_only_err_pct"]))
        section.tables.append(Table(f"replay-{stem}", summary, f"{name}: replay summary",
                                    ["condition", "kind", "N", "cases", "MB_per_rank", "recv_skew", "dispatch_ms",
                                     "dispatch_p10", "dispatch_p90", "combine_ms", "busbw_GBps", "vs_balanced"]))
        targets = [{"target": k, **{kk: vv for kk, vv in v.items() if not isinstance(vv, dict)}}
                   for k, v in (data.get("targets") or {}).items()]
        if targets:
            section.tables.append(Table(f"targets-{stem}", targets, f"{name}: targets"))
    section.html = "".join(html)
    return section


def simulate_section(runs, ctx) -> Section:
    """Predicted dispatch at larger EP (dodoco simulate --json), and the share caused by imbalance."""
    attached = _attached(ctx, "simulate")
    if not attached:
        raise SkipSection("no simulate results attached (dodoco simulate ... --json FILE, then --attach FILE)")
    section = Section("Predicted dispatch at larger EP (simulate)")
    for name, rows in attached:
        stem = name.removesuffix(".json")
        plt = plots._plt()
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
        for cond in sorted({r["condition"] for r in rows}):
            pts = sorted((r for r in rows if r["condition"] == cond), key=lambda r: r["N"])
            ax.plot([p["N"] for p in pts], [p["dispatch_ms"] for p in pts], marker="o", markersize=3, label=cond)
        bal = sorted({(r["N"], r["balanced_ms"]) for r in rows})
        ax.plot([b[0] for b in bal], [b[1] for b in bal], linestyle="--", color="0.4", label="balanced bytes")
        ax.set_xscale("log", base=2)
        ax.set(xlabel="EP degree N", ylabel="dispatch (ms)", title="predicted dispatch")
        ax.legend(fontsize=7)
        section.figures.append(Figure(f"simulate-{stem}", plots.png(fig), f"{name}: predicted dispatch by EP"))
        section.tables.append(Table(f"simulate-{stem}", rows, f"{name}: predictions",
                                    [c for c in ("condition", "N", "nodes", "MB_per_rank", "recv_skew", "dispatch_ms",
                                                 "balanced_ms", "imbalance_share", "hier_ms", "combine_ms",
                                                 "compute_ms", "layer_ms") if c in rows[0]]))
    return section


register_section(replay_section)
register_section(simulate_section)
