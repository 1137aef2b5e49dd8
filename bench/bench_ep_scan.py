"""Benchmark: full EP scan (N = 1..256 in powers of two, three placements, six batch sizes) over
counts [10000, 58, 256], as its tidy table (``ep_scan(...).to_table()``).

Placements: contiguous, round_robin, eplb (default replicas: 0 here, 256 experts divide over every
N) fitted on half the sequences; every placement evaluated on the other half (the one policy).
Each repeat runs in a fresh process; with ``--baseline SRC`` (a source tree, e.g. ``git archive
cb8098b src | tar -x -C /tmp/old`` then ``--baseline /tmp/old/src``) the same workload is timed on
that tree too, interleaved, and the JSON holds both medians and their ratio. Writes
bench/results/ep_scan.json. Not a test: nothing here asserts a time.

    python bench/bench_ep_scan.py [--repeats 3] [--seqs 10000] [--baseline /tmp/old/src]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import ab  # noqa: E402

TARGET_S = 10.0
L, E, K, TOKENS = 58, 256, 8, 1024
EP = tuple(2**i for i in range(9))  # 1..256
BATCH = (1, 2, 4, 8, 16, 32)
PLACEMENTS = ("contiguous", "round_robin", "eplb")

WORKLOAD = """
from dodoco.ep import ep_scan
from dodoco.findings import synthetic

def setup():
    # Dirichlet expert popularity per layer, Gamma jitter per sequence, TOKENS*K assignments each
    return synthetic.skewed_counts({S}, {L}, {E}, assignments={A}, seed=0)

def run(counts):
    r = ep_scan(counts, ep={EP}, batch={BATCH}, placement={PLACEMENTS}, seed=0)
    return (r.to_table() if hasattr(r, "to_table") else r).num_rows  # the baseline returned the table
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seqs", type=int, default=10000)
    ap.add_argument("--baseline", default=None, metavar="SRC", help="a source tree to time alongside")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ep_scan.json"))
    args = ap.parse_args()
    code = WORKLOAD.format(S=args.seqs, L=L, E=E, A=TOKENS * K, EP=EP, BATCH=BATCH, PLACEMENTS=PLACEMENTS)
    res = ab.run_ab(code, args.repeats, args.baseline)
    doc = ab.write(
        args.out,
        "ep_scan",
        res,
        TARGET_S,
        {
            "shape": [args.seqs, L, E],
            "ep": list(EP),
            "batch": list(BATCH),
            "placements": list(PLACEMENTS),
            "evaluation": f"eplb fitted on half the sequences; every placement on the other {args.seqs // 2}",
        },
    )
    print("\n".join(doc["notes"]) + f"\n-> {args.out}")


if __name__ == "__main__":
    main()
