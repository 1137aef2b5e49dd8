"""Benchmark: `dodoco report` with every figure over runs of counts [10000, 58, 256].

Two synthetic runs of one model (a mock-like run with uniform expert popularity and a real-like run
with Dirichlet(0.5)-skewed popularity, 1024 assignments per sequence and layer) are written as run
directories with RunWriter in a temp folder; the report (default options: per-step Gini at six
batch sizes, EP scan at 4..256 for two placements, every verdict, heatmaps, Lorenz, matrices and
whatever sections are registered) is built ``--repeats`` times. Writes bench/results/report.json
(median seconds, per-section seconds of the last repeat, shape, machine, target). Not a test.

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


def _timed_sections():
    """Wrap every registered section to record its seconds (last build wins)."""
    import dodoco.report.sections  # noqa: F401
    try:
        import dodoco.report.sections_ep  # noqa: F401
    except ImportError:
        pass
    seconds: dict[str, float] = {}
    for i, fn in enumerate(list(build.SECTIONS)):
        def timed(runs, ctx, fn=fn):
            t0 = time.perf_counter()
            try:
                return fn(runs, ctx)
            finally:
                seconds[fn.__name__] = round(time.perf_counter() - t0, 3)
        timed.__name__, timed.__doc__ = fn.__name__, fn.__doc__
        build.SECTIONS[i] = timed
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seqs", type=int, default=10000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "report.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_counts_run(tmp / "runs" / "mock-uniform-L1024", skewed_counts(args.seqs, L, E, concentration=None),
                         model="synthetic-58x256", condition="mock-uniform", seq_len=1024, K=8)
        write_counts_run(tmp / "runs" / "prose-L1024", skewed_counts(args.seqs, L, E, concentration=0.5, seed=1),
                         model="synthetic-58x256", condition="prose", seq_len=1024, K=8)
        seconds = _timed_sections()
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            build.build_report([tmp / "runs"], tmp / f"report-{i}")
            times.append(time.perf_counter() - t0)
        figures = sorted(p.name for p in (tmp / "report-0").glob("fig-*.png"))
        tables = sorted(p.name for p in (tmp / "report-0").glob("*.csv"))
    median = statistics.median(times)
    result = {
        "benchmark": "report", "median_s": round(median, 3), "times_s": [round(t, 3) for t in times],
        "repeats": args.repeats, "runs": 2, "shape": [args.seqs, L, E], "dtype": "uint32",
        "sections_s": seconds, "figures": figures, "tables": len(tables),
        "target_s": TARGET_S, "meets_target": median <= TARGET_S,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "numpy": np.__version__, "python": sys.version.split()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"report over 2 runs of {args.seqs}x{L}x{E}: median {median:.2f} s (target {TARGET_S} s), "
          f"{len(figures)} figures -> {args.out}")


if __name__ == "__main__":
    main()
