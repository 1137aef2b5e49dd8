"""Fit the dispatch model on replay results, choose its form, validate it, and ship preset calibrations.

One CPU command regenerates everything from the replay JSON the GPU benchmarks wrote:

    python bench/bench_simulate.py                                  # the repo's H200 replays
    python bench/bench_simulate.py bench/results/dispatch-*.json    # bench_dispatch.py's results

Per (machine, N, dispatcher, phase): every form of ``dodoco.simulate.forms`` fitted on the calibration
samples, the form chosen by held-out error (``dodoco.simulate.fit``), and the validation on routing
replays used neither to fit nor to choose (``dodoco.simulate.holdout``), with the naive-max and
volume-only models beside it. Writes:

- ``bench/results/simulate-validation.json``: sources, the split (samples per role), every form's
  selection scores, the chosen fits, validation by size band, every form on the held-out samples,
  the targets, the leak check, notes generated from this run;
- ``src/dodoco/simulate/presets/<preset>.calibration.json`` for each preset whose GPU the replays
  measured: the fits of the largest such machine (or ``--preset NAME=MACHINE``);
- ``bench/results/simulate-curves-<machine>.png``: measured time / balanced time against receiver
  skew per size and pattern, with the chosen model's curve.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from dodoco.report.tables import json_safe  # noqa: E402
from dodoco.simulate.calibration import Calibration  # noqa: E402
from dodoco.simulate.cluster import PRESETS, load_cluster, presets  # noqa: E402
from dodoco.simulate.fit import calibrate  # noqa: E402
from dodoco.simulate.forms import feats  # noqa: E402
from dodoco.simulate.samples import load_groups  # noqa: E402
from dodoco.simulate.holdout import form_rows, leaks, split_rows, target_rows, validation_rows  # noqa: E402
from dodoco.store.atomic import write_json  # noqa: E402

DEFAULT = [
    "replay-nvidia-h200-x2.json",
    "replay-nvidia-h200-x4.json",
    "replay-nvidia-h200-x8.json",
    "replay-zoo-nvidia-h200-x4.json",
]


def _rel(path: str) -> str:
    p = os.path.abspath(path)
    return os.path.relpath(p, ROOT) if p.startswith(str(ROOT) + os.sep) else path


def host_of_sources(srcs, machine: str) -> dict:
    """The host identity the first source replay file records (its device block and topology text)."""
    import json

    from dodoco.host import host_from_replay

    for s in srcs:
        p = Path(s["path"]) if Path(s["path"]).is_absolute() else ROOT / s["path"]
        if p.is_file():
            return host_from_replay(json.loads(p.read_text()), machine)
    return {}


def preset_machines(cal: Calibration, explicit: list[str]) -> dict[str, str]:
    """{preset: machine}: explicit NAME=MACHINE pairs, else per preset the machine with the most ranks
    among those whose device names the preset's GPU."""
    out = dict(p.split("=", 1) for p in explicit)
    if explicit:
        return out
    for name in presets():
        gpu = load_cluster(name).gpu.upper()
        fits = [f for f in cal.fits if gpu and gpu in f.device.upper()]
        if fits:
            out[name] = max(fits, key=lambda f: (max(g.N for g in fits if g.machine == f.machine), f.machine)).machine
    return out


def notes_of(sources, records, targets, elapsed) -> list[str]:
    """Notes generated from this run's data."""
    notes = [f"fitted and validated in {elapsed:.1f} s on CPU"]
    if {s.schema for s in sources} == {"dodoco.replay/1"}:
        notes.append(
            "schema 1 replays only: calibration = uniform sweep + balanced + synthetic skew controls at the "
            "replay's one size; validation routing sits at that same size, so interpolation across sizes "
            "is untested here (bench_dispatch.py's grid and off-grid routing test it)"
        )
    off = sum(t["off_grid_samples"] for t in targets)
    notes.append(
        f"{off} of {sum(t['samples'] for t in targets)} held-out routing samples are at sizes off the calibration sizes"
    )
    chosen = {}
    for r in records:
        if "chosen" in r:
            chosen[r["chosen"]] = chosen.get(r["chosen"], 0) + 1
    notes.append(
        "forms chosen per (machine, N, dispatcher, phase): " + ", ".join(f"{k} {v}" for k, v in chosen.items())
    )
    for r in records:
        if "skipped" in r:
            notes.append(f"not calibrated: {r['machine']} N={r['N']} {r['dispatcher']} {r['phase']}: {r['skipped']}")
    missed = [f"{t['machine']} {t['dispatcher']} N={t['N']}" for t in targets if not t["met"]]
    notes.append("targets met everywhere" if not missed else "targets missed: " + "; ".join(missed))
    return notes


def _panel(ax, g, fit, cmap) -> None:
    """One (dispatcher, N): measured ratios by role; the model's curve per calibrated size and pattern."""
    f = feats(g.b)
    base = fit.balanced.time(f.m)
    ratio_meas, ratio_pred = g.t / base, fit.predict(g.b) / base
    skew = g.b.sum(-2).max(-1) / g.b.sum(-2).mean(-1)
    imb = f.M > 1.001 * f.m
    roles = np.array(g.role)
    style = {
        "fit": dict(marker="o", s=10, color="0.55"),
        "select": dict(marker="^", s=18, color="tab:orange"),
        "validate": dict(marker="s", s=18, color="tab:green"),
    }
    for role, kw in style.items():
        sel = (roles == role) & imb
        ax.scatter(skew[sel], ratio_meas[sel], label=f"measured ({role})", zorder=3, **kw)
    fitpts = (roles == "fit") & imb
    sizes = sorted({round(float(x) / 2**20) for x in f.x[fitpts]})
    for k, mb in enumerate(sizes):
        for pat, ls in (("hot-receiver", "-"), ("hot-pair", "--")):
            line = fitpts & (np.round(f.x / 2**20) == mb) & (np.array(g.pattern) == pat)
            if line.sum() < 2:
                continue
            order = np.flatnonzero(line)[np.argsort(skew[line])]
            ax.plot(
                skew[order],
                ratio_pred[order],
                ls,
                color=cmap(k / max(1, len(sizes) - 1)),
                linewidth=1.0,
                label=f"model, {mb} MiB/rank, {pat}",
            )
    ax.set(
        xlabel="receiver skew (max / mean rank bytes)",
        ylabel="time / balanced time (same bytes)",
        title=f"{g.dispatcher} dispatch, N = {g.N}\nchosen form: {fit.form}",
    )


def curves_figure(groups, cal: Calibration, machine: str, path: Path) -> None:
    """time / balanced time against receiver skew (dispatch): a row per dispatcher, a column per N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = [g for g in groups if g.machine == machine and g.phase == "dispatch"]
    disps, Ns = sorted({g.dispatcher for g in gs}), sorted({g.N for g in gs})
    fig, axes = plt.subplots(len(disps), len(Ns), figsize=(4.4 * len(Ns), 3.6 * len(disps)), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for g in gs:
        ax = axes[disps.index(g.dispatcher)][Ns.index(g.N)]
        ax.set_visible(True)
        _panel(ax, g, cal.lookup(g.N, g.dispatcher, "dispatch", machine=machine)[0], plt.get_cmap("viridis"))
    handles = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(f"{machine}: cost of imbalance, measured (points) and modelled (lines)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("replays", nargs="*", help="replay result JSON (default: the repo's H200 replays)")
    p.add_argument("-o", "--out", default=str(ROOT / "bench/results/simulate-validation.json"))
    p.add_argument("--preset", action="append", default=[], metavar="NAME=MACHINE")
    p.add_argument("--presets-dir", default=str(PRESETS), help="where preset calibrations are written")
    p.add_argument("--no-figures", action="store_true")
    args = p.parse_args(argv)
    paths = args.replays or [str(ROOT / "bench/results" / f) for f in DEFAULT]
    t0 = time.perf_counter()
    groups, sources = load_groups(paths)
    sources = [dataclasses.replace(s, path=_rel(s.path)) for s in sources]  # the record names repo paths
    cal, records = calibrate(groups, sources)
    val, targets = validation_rows(records, groups), target_rows(records, groups)
    elapsed = time.perf_counter() - t0
    leaked = leaks(groups)
    selection = [{k: v for k, v in r.items() if k != "fits"} for r in records]
    doc = {
        "schema": "dodoco.simulate-validation/1",
        "sources": [s.to_dict() for s in sources],
        "split": split_rows(groups),
        "leaks": leaked,
        "selection": selection,
        "calibration": cal.to_dict(),
        "validation": val,
        "forms_on_heldout": form_rows(records, groups),
        "targets": targets,
        "notes": notes_of(sources, records, targets, elapsed),
    }
    write_json(Path(args.out), json_safe(doc))
    print(f"wrote {args.out}")
    for name, machine in preset_machines(cal, args.preset).items():
        fits = [f for f in cal.fits if f.machine == machine]
        srcs = [s for s in cal.sources if machine in s["machine"].split(",")]
        pc = Calibration(
            tuple(fits),
            tuple(srcs),
            cal.created,
            cal.dodoco,
            (f"fits of {machine} for preset {name}, from bench/bench_simulate.py",),
            host=host_of_sources(srcs, machine),
        )
        out = Path(args.presets_dir) / f"{name}.calibration.json"
        write_json(out, json_safe(pc.to_dict()))
        print(f"wrote {out} ({len(fits)} fits of {machine})")
    if not args.no_figures:
        for machine in sorted({g.machine for g in groups}):
            fig = Path(args.out).parent / f"simulate-curves-{machine}.png"
            curves_figure(groups, cal, machine, fig)
            print(f"wrote {fig}")
    for t in targets:
        print(t)
    for n in doc["notes"]:
        print("note:", n)
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
