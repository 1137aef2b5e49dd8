"""NeuSim export on every run of the repo's benchmarks: does NeuSim's own receiver-skew formula, fed
the exported parameters, reproduce the skew measured on the routing?

    python bench/bench_neusim.py            # bench/data/* runs, plus the five zoo models observed here
    python bench/bench_neusim.py --no-zoo   # bench/data/* only (no model runs)

For every run and regime (prefill; decode where the run has token traces): the export at its
default EP (the largest of 4, 8, 16, 32 below E whose step fits, never E), the measured receiver
skew there, NeuSim's skew with the measured parameters (per-expert max/mean, hot-expert count) and
with the effective ones, and the residual of the effective ones at every other EP listed. Target:
effective predicted skew within 2% of measured at the chosen EP on every run. The zoo runs are
observed on CPU (``zoo:<family>`` on held-out prose and mock-uniform, 64 sequences of 128 tokens,
token traces on, so decode steps exist). Writes bench/results/neusim.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dodoco.store.atomic import json_safe  # noqa: E402
from dodoco.simulate.neusim_export import neusim_entries  # noqa: E402
from dodoco.store import find_runs  # noqa: E402
from dodoco.store.atomic import write_json  # noqa: E402

TARGET_PCT = 2.0
# NeuSim times each expert as its own matmul op (W_dev "most_loaded", P - W_dev "remaining"), the
# per-expert loop's structure: the check's target is on ``loop``; grouped_mm is listed beside it.
COMPUTE_KERNELS = ("loop", "grouped_mm")


def zoo_runs(out: Path) -> list[Path]:
    from dodoco.models.tiny import FAMILIES
    from dodoco.observe.runner import observe

    paths = []
    for family in FAMILIES:
        paths += observe(
            f"zoo:{family}",
            ["mock-uniform", "prose"],
            seq_len=128,
            sequences=64,
            out=out / family,
            traces=True,
            overwrite=True,
        )
    return paths


def _where(run: str) -> str:
    """A run's path as the result file keeps it: repo-relative, or "observed here: <family>/<run>"."""
    p = Path(run)
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else f"observed here: {p.parent.name}/{p.name}"


def row_of(e: dict) -> dict:
    at = e["derived_at"]["ep"]
    others = [
        abs(x["effective_residual_pct"])
        for x in e["by_ep"]
        if x["ep"] != at and x["effective_residual_pct"] is not None
    ]
    resid = e["effective"]["residual_pct"]
    return {
        "model": e["model"],
        "condition": e["condition"],
        "regime": e["regime"],
        "run": _where(e["provenance"]["run"]),
        "E": e["num_routed_experts"],
        "K": e["num_activated_routed_experts_per_token"],
        "ep": at,
        "batch": e["derived_at"]["batch"],
        "steps": e["derived_at"]["steps"],
        "measured_skew": e["skew"]["measured"],
        "measured_f": e["measured"]["expert_load_imbalance_factor"],
        "measured_W": e["measured"]["num_worst_case_experts"],
        "measured_params_pred_over_measured": e["measured"]["predicted_skew"] / e["skew"]["measured"],
        "effective_f": e["effective"]["expert_load_imbalance_factor"],
        "effective_W": e["effective"]["num_worst_case_experts"],
        "effective_residual_pct": resid,
        "max_abs_residual_other_ep_pct": max(others, default=0.0),
        "residual_by_ep_pct": {x["ep"]: x["effective_residual_pct"] for x in e["by_ep"]},
        "met": abs(resid) <= TARGET_PCT,
    }


def compute_of(e: dict, run, kernel: str) -> dict:
    """The compute check of a prefill export under the H100 calibration of ``kernel``: NeuSim's
    worst-case device fed the exported compute pair, against the busiest device, tokens and ms at the
    chosen EP; keys prefixed by the kernel."""
    from types import SimpleNamespace

    from dodoco.simulate.export_api import _compute_block

    cfg = SimpleNamespace(shape=None, gpu="h100", kernel=kernel, compute_calibration=None, seed=0, max_steps=8)
    block = _compute_block(cfg, run, e)
    if "skipped" in block:
        return {"compute_skipped": block["skipped"]}
    here = next(x for x in block["residuals"] if x["fitted_here"])
    return {
        f"{kernel}_f": block["expert_load_imbalance_factor"],
        f"{kernel}_W": block["num_worst_case_experts"],
        f"{kernel}_tokens_residual_pct": 100 * here["tokens_residual"],
        f"{kernel}_ms_residual_pct": 100 * here["ms_residual"],
        f"{kernel}_met": max(abs(here["tokens_residual"]), abs(here["ms_residual"])) * 100 <= TARGET_PCT,
        "compute_shape": block["shape"],
    }


def _compute_note(rows: list[dict], kernel: str) -> str:
    done = [r for r in rows if f"{kernel}_met" in r]
    if not done:
        return "compute check: no prefill export had an expert shape"
    worst = max(max(abs(r[f"{kernel}_tokens_residual_pct"]), abs(r[f"{kernel}_ms_residual_pct"])) for r in done)
    return (
        f"compute check (NeuSim's worst-case device, H100 {kernel} calibration): {sum(r[f'{kernel}_met'] for r in done)}"
        f" of {len(done)} prefill exports within {TARGET_PCT}% in tokens and ms at the chosen EP (worst {worst:.2f}%)"
    )


def _compute_cols(e: dict, run) -> dict:
    """Both kernels' compute checks of a prefill export (``COMPUTE_KERNELS``); nothing for decode."""
    if e["regime"] != "prefill":
        return {}
    return {k: v for kernel in COMPUTE_KERNELS for k, v in compute_of(e, run, kernel).items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="*", default=[str(ROOT / "bench/data")])
    p.add_argument("--no-zoo", action="store_true", help="skip observing the zoo models")
    p.add_argument("-o", "--out", default=str(ROOT / "bench/results/neusim.json"))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    paths = list(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_zoo:
            paths += [str(x) for x in zoo_runs(Path(tmp))]
        t_obs = time.perf_counter() - t0
        runs = find_runs(paths)
        by_path = {str(r.path): r for r in runs}
        rows = [
            {**row_of(e), **_compute_cols(e, by_path[e["provenance"]["run"]])}
            for e in neusim_entries(runs, regime="both")
        ]
    elapsed = time.perf_counter() - t0
    missed = [f"{r['model']} {r['condition']} {r['regime']}" for r in rows if not r["met"]]
    over = [r["measured_params_pred_over_measured"] for r in rows]
    notes = [
        f"{len(rows)} exports (runs x regimes) in {elapsed:.1f} s on CPU, of which {t_obs:.1f} s observing the zoo",
        f"effective parameters: |predicted / measured - 1| <= {TARGET_PCT}% at the chosen EP on "
        + ("every export" if not missed else f"all but {missed}"),
        f"measured parameters fed to NeuSim's formula give {min(over):.2f}x to {max(over):.2f}x the measured skew",
        "zoo runs observed here (64 sequences of 128 tokens, held-out text, token traces); bench/data runs as committed",
        *(_compute_note(rows, kernel) for kernel in COMPUTE_KERNELS),
    ]
    doc = {"schema": "dodoco.bench-neusim/1", "target_pct": TARGET_PCT, "met": not missed, "rows": rows, "notes": notes}
    write_json(Path(args.out), json_safe(doc))
    for r in rows:
        print(
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in r.items()
                if k not in ("run", "residual_by_ep_pct")
            }
        )
    for n in notes:
        print("note:", n)
    print(f"wrote {args.out}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
