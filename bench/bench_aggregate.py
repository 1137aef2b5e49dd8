"""Benchmark: metrics_table (all per-step metrics, six batch sizes) on counts [10000, 48, 128].

Writes bench/results/aggregate.json (median seconds over repeats, machine, numpy version, target)
and prints one line. Not a test: nothing here asserts a time.

    python bench/bench_aggregate.py [--repeats 5] [--seqs 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from dodoco.findings import synthetic
from dodoco.metrics import metrics_table

TARGET_S = 5.0
L, E, K, TOKENS = 48, 128, 8, 1024


def skewed_counts(S: int, seed: int = 0) -> np.ndarray:
    """Skewed counts uint32 [S, L, E] (dodoco.findings.synthetic: Dirichlet expert popularity per layer,
    Gamma jitter per sequence, TOKENS*K assignments per sequence and layer)."""
    return synthetic.skewed_counts(S, L, E, assignments=TOKENS * K, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seqs", type=int, default=10000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "aggregate.json"))
    args = ap.parse_args()

    counts = skewed_counts(args.seqs)
    batches = (1, 2, 4, 8, 16, 32)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        table = metrics_table(counts, model="bench", condition="synthetic", seq_len=TOKENS,
                              batch_sizes=batches)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    result = {
        "benchmark": "metrics_table",
        "median_s": round(median, 4),
        "times_s": [round(t, 4) for t in times],
        "repeats": args.repeats,
        "shape": list(counts.shape),
        "dtype": str(counts.dtype),
        "batch_sizes": list(batches),
        "rows": table.num_rows,
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "numpy": np.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"metrics_table {list(counts.shape)} x {len(batches)} batch sizes: median {median:.2f} s "
          f"over {args.repeats} (target {TARGET_S:.1f} s, {'met' if median <= TARGET_S else 'MISSED'})")


if __name__ == "__main__":
    main()
