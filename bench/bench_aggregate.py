"""Benchmark: metrics_table (all per-step metrics, six batch sizes, the aggregate) on counts
[10000, 48, 128].

Each repeat runs in a fresh process; with ``--baseline SRC`` (another source tree) the same
workload is timed on it too, interleaved, and the JSON holds both medians and their ratio. Writes
bench/results/aggregate.json. Not a test: nothing here asserts a time.

    python bench/bench_aggregate.py [--repeats 5] [--seqs 10000] [--baseline /tmp/old/src]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import ab  # noqa: E402

TARGET_S = 5.0
L, E, K, TOKENS = 48, 128, 8, 1024
BATCHES = (1, 2, 4, 8, 16, 32)

WORKLOAD = """
from dodoco.findings import synthetic
from dodoco.analysis import metrics_table

def setup():
    # Dirichlet expert popularity per layer, Gamma jitter per sequence, TOKENS*K assignments each
    return synthetic.skewed_counts({S}, {L}, {E}, assignments={A}, seed=0)

def run(counts):
    return metrics_table(counts, model="bench", condition="synthetic", seq_len={T},
                         batch_sizes={BATCHES}).num_rows
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seqs", type=int, default=10000)
    ap.add_argument("--baseline", default=None, metavar="SRC", help="a source tree to time alongside")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "aggregate.json"))
    args = ap.parse_args()
    code = WORKLOAD.format(S=args.seqs, L=L, E=E, A=TOKENS * K, T=TOKENS, BATCHES=BATCHES)
    res = ab.run_ab(code, args.repeats, args.baseline)
    doc = ab.write(
        args.out,
        "metrics_table",
        res,
        TARGET_S,
        {"shape": [args.seqs, L, E], "dtype": "uint32", "batch_sizes": list(BATCHES)},
    )
    print("\n".join(doc["notes"]) + f"\n-> {args.out}")


if __name__ == "__main__":
    main()
