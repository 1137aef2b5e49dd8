"""Fit the dispatch model on replay results, choose its form, validate it, and ship preset calibrations.

One CPU command regenerates everything from the replay JSON the GPU benchmarks wrote:

    python bench/bench_simulate.py                                  # the repo's H200 replays
    python bench/bench_simulate.py bench/results/dispatch-*.json    # bench_dispatch.py's results

Per (machine, N, dispatcher, phase): every form of ``dodoco.simulate.forms`` fitted on the calibration
samples, the form chosen by held-out error (``dodoco.simulate.fit``), and the validation on routing
replays used neither to fit nor to choose (``dodoco.simulate.validate``), with the naive-max and
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
from dodoco.simulate.measure import load_groups  # noqa: E402
from dodoco.simulate.validate import form_rows, leaks, split_rows, target_rows, validation_rows  # noqa: E402
from dodoco.store.atomic import write_json  # noqa: E402

DEFAULT = ["replay-nvidia-h200-x2.json", "replay-nvidia-h200-x4.json", "replay-nvidia-h200-x8.json",
           "replay-zoo-nvidia-h200-x4.json"]


def _rel(path: str) -> str:
    p = os.path.abspath(path)
    return os.path.relpath(p, ROOT) if p.startswith(str(ROOT) + os.sep) else path


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
        notes.append("schema 1 replays only: calibration = uniform sweep + balanced + synthetic skew controls at the "
                     "replay's one size; validation routing sits at that same size, so interpolation across sizes "
                     "is untested here (bench_dispatch.py's grid and off-grid routing test it)")
    off = sum(t["off_grid_samples"] for t in targets)
    notes.append(f"{off} of {sum(t['samples'] for t in targets)} held-out routing samples are at sizes off the "
                 "calibration sizes")
    chosen = {}
    for r in records:
        if "chosen" in r:
            chosen[r["chosen"]] = chosen.get(r["chosen"], 0) + 1
    notes.append("forms chosen per (machine, N, dispatcher, phase): " + ", ".join(f"{k} {v}" for k, v in chosen.items()))
    missed = [f"{t['machine']} {t['dispatcher']} N={t['N']}" for t in targets if not t["met"]]
    notes.append("targets met everywhere" if not missed else "targets missed: " + "; ".join(missed))
    return notes


def curves_figure(groups, cal: Calibration, machine: str, path: Path) -> None:
    """time / balanced time against receiver skew (dispatch), one panel per N: points measured, lines model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gs = [g for g in groups if g.machine == machine and g.phase == "dispatch"]
    fig, axes = plt.subplots(1, len(gs), figsize=(4.2 * len(gs), 3.6), squeeze=False)
    for ax, g in zip(axes[0], gs):
        fit, _ = cal.lookup(g.N, g.dispatcher, "dispatch", machine=machine)
        f = feats(g.b)
        ratio_meas = g.t / fit.balanced.time(f.m)
        ratio_pred = fit.predict(g.b) / fit.balanced.time(f.m)
        skew = g.b.sum(-2).max(-1) / g.b.sum(-2).mean(-1)
        imb = f.M > 1.001 * f.m
        for role, marker in (("fit", "o"), ("select", "^"), ("validate", "s")):
            sel = np.array([r == role for r in g.role]) & imb
            ax.scatter(skew[sel], ratio_meas[sel], s=16, marker=marker, label=f"measured ({role})")
        ax.scatter(skew[imb], ratio_pred[imb], s=12, marker="x", color="0.2", linewidths=0.7,
                   label="model, same traffic")
        fitpts = np.array([r == "fit" for r in g.role]) & imb
        for mb in sorted({round(float(x) / 1e6) for x in f.x[fitpts]}):
            line = fitpts & (np.round(f.x / 1e6) == mb)
            order = np.flatnonzero(line)[np.argsort(skew[line])]
            ax.plot(skew[order], ratio_pred[order], color="0.5", linewidth=0.7)
        ax.set(xlabel="receiver skew (max / mean rank bytes)", ylabel="time / balanced time (same bytes)",
               title=f"{g.dispatcher} dispatch, N = {g.N} (model: {fit.form})")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{machine}: cost of imbalance, measured and modelled", fontsize=10)
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
    doc = {"schema": "dodoco.simulate-validation/1", "sources": [s.to_dict() for s in sources],
           "split": split_rows(groups), "leaks": leaked, "selection": selection,
           "calibration": cal.to_dict(), "validation": val, "forms_on_heldout": form_rows(records, groups),
           "targets": targets, "notes": notes_of(sources, records, targets, elapsed)}
    write_json(Path(args.out), json_safe(doc))
    print(f"wrote {args.out}")
    for name, machine in preset_machines(cal, args.preset).items():
        fits = [f for f in cal.fits if f.machine == machine]
        srcs = [s for s in cal.sources if machine in s["machine"].split(",")]
        pc = Calibration(tuple(fits), tuple(srcs), cal.created, cal.dodoco,
                         (f"fits of {machine} for preset {name}, from bench/bench_simulate.py",))
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
