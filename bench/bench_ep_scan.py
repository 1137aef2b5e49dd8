"""Benchmark: full EP scan (N = 1..256 in powers of two, three placements, six batch sizes) over
counts [10000, 58, 256].

Placements: contiguous, round_robin, eplb with 0 redundant experts fitted on half the sequences;
every placement evaluated on the other half (ep_scan's default common_eval=True). Wall and CPU
seconds are both recorded (other processes on the machine inflate wall time), plus one run with
common_eval=False (contiguous and round_robin on all 10000 sequences). Writes bench/results/ep_scan.json (median seconds of the repeats,
shape, machine, target) and prints one line. Not a test: nothing here asserts a time.

    python bench/bench_ep_scan.py [--repeats 3] [--seqs 10000]
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

from dodoco.ep import ep_scan
from dodoco.findings import synthetic

TARGET_S = 10.0
L, E, K, TOKENS = 58, 256, 8, 1024
EP = tuple(2**i for i in range(9))  # 1..256
BATCH = (1, 2, 4, 8, 16, 32)
PLACEMENTS = ("contiguous", "round_robin", "eplb")


def skewed_counts(S: int, seed: int = 0) -> np.ndarray:
    """Skewed counts uint32 [S, L, E] (dodoco.findings.synthetic: Dirichlet expert popularity per layer,
    Gamma jitter per sequence, TOKENS*K assignments per sequence and layer)."""
    return synthetic.skewed_counts(S, L, E, assignments=TOKENS * K, seed=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seqs", type=int, default=10000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ep_scan.json"))
    args = ap.parse_args()

    counts = skewed_counts(args.seqs)
    load_before = os.getloadavg()
    times, cpus, rows = [], [], 0
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        table = ep_scan(counts, ep=EP, batch=BATCH, placement=PLACEMENTS, seed=0)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        rows = table.num_rows
    median = statistics.median(times)
    # the variant that evaluates contiguous / round_robin on all sequences (EPLB on the held-out
    # half), once, for the record
    t0, c0 = time.perf_counter(), time.process_time()
    ep_scan(counts, ep=EP, batch=BATCH, placement=PLACEMENTS, seed=0, common_eval=False)
    separate = {"wall_s": round(time.perf_counter() - t0, 4),
                "cpu_s": round(time.process_time() - c0, 4)}
    result = {
        "benchmark": "ep_scan",
        "median_s": round(median, 4),
        "times_s": [round(t, 4) for t in times],
        "cpu_s": [round(t, 4) for t in cpus],
        "repeats": args.repeats,
        "evaluation": "common_eval=True: every placement on the held-out half (5000 sequences); "
                      "EPLB fitted on the other half",
        "common_eval_false": separate,
        "loadavg_before_after": [round(x, 2) for x in load_before + os.getloadavg()],
        "shape": list(counts.shape),
        "ep": list(EP),
        "batch": list(BATCH),
        "placements": list(PLACEMENTS),
        "rows": rows,
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ep_scan {counts.shape}: median {median:.2f} s wall, "
          f"{statistics.median(cpus):.2f} s CPU over {args.repeats} (target <= {TARGET_S} s); "
          f"common_eval=False {separate['wall_s']:.2f} s; load {result['loadavg_before_after']} "
          f"-> {out}")


if __name__ == "__main__":
    main()
