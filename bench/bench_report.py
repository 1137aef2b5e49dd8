"""Benchmark: `dodoco report` with every figure over runs of counts [10000, 58, 256].

Two synthetic runs of one model (a mock-like run with uniform expert popularity and a real-like run
with Dirichlet(0.5)-skewed popularity, 1024 assignments per sequence and layer) are written as run
directories in a temp folder; the report (default options: per-step Gini at six batch sizes, EP
scan at 4..256 for contiguous, round_robin and eplb, every verdict, heatmaps, Lorenz, matrices,
mitigations, NeuSim) is built ``--repeats`` times. Writes bench/results/report.json: median
seconds of the whole build, of judge() and of each section (last repeat), shape, machine, target,
and notes generated from this run. Not a test: nothing here asserts a time.

    python bench/bench_report.py [--repeats 3] [--seqs 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.report import build

TARGET_S = 30.0
L, E = 58, 256


def _timed_sections(seconds: dict) -> tuple:
    """SECTIONS with each function wrapped to record its seconds into ``seconds`` (last build wins)."""

    def wrap(fn):
        def timed(ctx):
            t0 = time.perf_counter()
            try:
                return fn(ctx)
            finally:
                seconds[fn.__name__] = round(time.perf_counter() - t0, 3)

        timed.__name__, timed.__doc__ = fn.__name__, fn.__doc__
        return timed

    return tuple(wrap(fn) for fn in build.SECTIONS)


def _write_runs(root: Path, seqs: int) -> Path:
    """The two runs every build reads: mock-uniform and prose (Dirichlet 0.5), [seqs, L, E] each."""
    for condition, kind, conc, seed in (("mock-uniform", "mock", None, 0), ("prose", "real", 0.5, 1)):
        write_counts_run(
            root / "runs" / f"{condition}-L1024",
            skewed_counts(seqs, L, E, concentration=conc, seed=seed),
            model="synthetic-58x256",
            condition=condition,
            kind=kind,
            seq_len=1024,
            K=8,
        )
    return root / "runs"


def _builds(runs: Path, tmp: Path, repeats: int) -> tuple:
    """(seconds per whole build, seconds per judge() of it, figure names, csv tables, verdicts)."""
    totals, judged = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        findings = build.judge_runs([runs], build.ReportOptions())
        t1 = time.perf_counter()
        build.write_report(findings, tmp / f"report-{i}", build.ReportOptions())
        totals.append(time.perf_counter() - t0)
        judged.append(t1 - t0)
    figures = sorted(p.name for p in (tmp / "report-0").glob("fig-*.png"))
    tables = sorted(p.name for p in (tmp / "report-0").glob("*.csv"))
    return totals, judged, figures, tables, {k: v.verdict for k, v in findings.verdicts.items()}


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seqs", type=int, default=10000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "report.json"))
    args = ap.parse_args()
    seconds: dict[str, float] = {}
    build.SECTIONS = _timed_sections(seconds)
    with tempfile.TemporaryDirectory() as tmp:
        totals, judged, figures, tables, verdicts = _builds(_write_runs(Path(tmp), args.seqs), Path(tmp), args.repeats)
    median = statistics.median(totals)
    slowest = max(seconds, key=seconds.get)
    result = {
        "benchmark": "report",
        "median_s": round(median, 3),
        "times_s": [round(t, 3) for t in totals],
        "judge_median_s": round(statistics.median(judged), 3),
        "repeats": args.repeats,
        "runs": 2,
        "shape": [args.seqs, L, E],
        "dtype": "uint32",
        "sections_s": seconds,
        "figures": figures,
        "tables": len(tables),
        "verdicts": verdicts,
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
        "machine": _machine(),
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "notes": [
            f"median of {args.repeats} builds: {median:.2f} s against a target of {TARGET_S:.0f} s; judge() "
            f"(per-step Gini, EP scans, verdicts) {statistics.median(judged):.2f} s of it",
            f"slowest section: {slowest} ({seconds[slowest]:.2f} s in the last build)",
            f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs while it ran",
        ],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"report over 2 runs of {args.seqs}x{L}x{E}: median {median:.2f} s (target {TARGET_S} s), "
        f"{len(figures)} figures -> {args.out}"
    )


if __name__ == "__main__":
    main()
