"""Benchmark: co-activation and cross-layer affinity of token traces [S=1024 x 2048 tokens, L=48,
K=8] (E=128, the Qwen3-30B-A3B shape), and the trace-placement table of observed zoo runs.

Speed (default): a synthetic trace is written to a temporary .npy and memory-mapped, as a run's
tokens.npy is; each repeat times ``count_pairs`` (within-layer pairs and layer-to-layer transitions
in one pass) + ``coactivation_rows`` + ``affinity_rows``, the target; the token-shuffled control
of the affinity is timed once beside it. The synthetic routing: per layer, a Dirichlet(0.3)
expert popularity picks a base expert per token and one of 64 fixed offset patterns completes its
8 distinct experts (so pairs recur); the timing does not depend on the routing's content beyond
that. Wall and CPU seconds (this process and its worker processes) are recorded with the load
average (other engineers share the 2 cores); ``--workers`` sets count_pairs' processes.

Zoo (``--zoo DIR``): every traced run below DIR (``dodoco observe ... --traces``), placements
contiguous, eplb, coact, affinity fitted on half the sequences and evaluated on the other half at
EP 4..32, prefill and decode (``evaluate_placements``); writes the rows and the EP-8 savings
table. Writes JSON under bench/results/ and prints a summary. Not a test: nothing asserts a time.

    python bench/bench_traces.py [--repeats 3]
    python bench/bench_traces.py --zoo runs/zoo-traces
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from dodoco.ep.affinity import affinity_rows
from dodoco.ep.coactivation import coactivation_rows, count_pairs

TARGET_S = 30.0
S, TOKENS, L, K, E = 1024, 2048, 48, 8, 128
RESULTS = Path(__file__).parent / "results"


def synthetic_trace(path: Path, seed: int = 0) -> np.ndarray:
    """Write the synthetic trace uint8 [S*TOKENS, L, K] to path (.npy) and return it memory-mapped."""
    rng = np.random.default_rng(seed)
    T = S * TOKENS
    pat = np.stack([rng.choice(E, K, replace=False) for _ in range(64)]).astype(np.int64)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(T, L, K))
    for l in range(L):
        p = rng.dirichlet(np.full(E, 0.3))
        base = rng.choice(E, T, p=p)
        out[:, l, :] = (base[:, None] + pat[rng.integers(0, 64, T)]) % E
    out.flush()
    return np.load(path, mmap_mode="r")


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (count_pairs forks workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn):
    t0, c0 = time.perf_counter(), _cpu()
    value = fn()
    return value, time.perf_counter() - t0, _cpu() - c0


def speed(args) -> None:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        topk = synthetic_trace(Path(tmp) / "tokens.npy")
        load_before = os.getloadavg()
        walls, cpus = [], []
        with Progress() as bar:
            task = bar.add_task("co-activation + affinity", total=args.repeats + 1)
            for _ in range(args.repeats):

                def work():
                    pc = count_pairs(topk, E, workers=args.workers)
                    return coactivation_rows(pc), affinity_rows(pc)

                (co, aff), wall, cpu = timed(work)
                walls.append(wall), cpus.append(cpu)
                bar.advance(task)
            _, sh_wall, sh_cpu = timed(lambda: count_pairs(topk, E, within=False, permute_seed=0, workers=args.workers))
            bar.advance(task)
    median = statistics.median(walls)
    result = {
        "benchmark": "coactivation+affinity (count_pairs, coactivation_rows, affinity_rows)",
        "shape": [S * TOKENS, L, K],
        "E": E,
        "sequences": S,
        "tokens_per_sequence": TOKENS,
        "median_s": round(median, 2),
        "times_s": [round(t, 2) for t in walls],
        "workers": args.workers,
        "cpu_s": [round(t, 2) for t in cpus],
        "repeats": args.repeats,
        "shuffled_control": {
            "wall_s": round(sh_wall, 2),
            "cpu_s": round(sh_cpu, 2),
            "note": "the affinity's independence control, timed separately",
        },
        "loadavg_before_after": [round(x, 2) for x in load_before + os.getloadavg()],
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
        "example": {"layer0_coactivation": co[0], "layer0_affinity": aff[0]},
        "note": f"median wall over {args.repeats} repeats on synthetic traces (see bench/"
        f"bench_traces.py); {len(walls)} runs, cpu_count {os.cpu_count()}",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "numpy": np.__version__,
    }
    write(args.out or RESULTS / "traces.json", result)
    print(
        f"co-activation + affinity of {[S * TOKENS, L, K]}: median {median:.1f} s wall over "
        f"{args.repeats} (target {TARGET_S:.0f} s, {'met' if median <= TARGET_S else 'MISSED'}); "
        f"shuffled control {sh_wall:.1f} s"
    )


def zoo(args) -> None:
    from dodoco.ep.trace_eval import TraceEvalOptions, evaluate_placements
    from dodoco.store import find_runs

    runs = [r for r in find_runs([args.zoo]) if r.has_tokens]
    opts = TraceEvalOptions(ep=(4, 8, 16, 32))
    rows, skipped = [], []
    with Progress() as bar:
        task = bar.add_task("placements on traced runs", total=len(runs))
        for run in runs:
            topk, offsets = run.tokens()
            r, s = evaluate_placements(topk, offsets, run.E, opts)
            lab = {"model": run.model, "condition": run.condition, "E": run.E, "K": run.K, "L": run.L}
            rows += [{**lab, **x} for x in r]
            skipped += [{**lab, "ep": N, "what": w, "reason": why} for N, w, why in s]
            bar.advance(task)
    table = [
        {
            k: x[k]
            for k in (
                "model",
                "condition",
                "regime",
                "placement",
                "dedup_saving",
                "dedup_saving_lo",
                "dedup_saving_hi",
                "forward_saving",
                "forward_saving_lo",
                "forward_saving_hi",
                "receiver_skew",
                "steps",
            )
        }
        for x in rows
        if x["ep"] == 8 and x["placement"] in ("coact", "affinity")
    ]
    result = {
        "benchmark": "trace placements held out on zoo runs",
        "options": vars(opts) if hasattr(opts, "__dict__") else str(opts),
        "ep8_savings_over_eplb": table,
        "rows": rows,
        "skipped": skipped,
        "note": f"{len(runs)} traced runs under {args.zoo}; savings per step 1 - x/x_eplb, "
        f"mean over held-out steps with a 95% bootstrap interval over steps",
    }
    write(args.out or RESULTS / "traces-zoo.json", result)
    for x in table:
        print(
            f"{x['model']:>16} {x['condition']:>6} {x['regime']:>7} {x['placement']:>8}: dedup "
            f"{x['dedup_saving']:+.1%} [{x['dedup_saving_lo']:+.1%}, {x['dedup_saving_hi']:+.1%}]"
            f"  forward {x['forward_saving']:+.1%}  skew {x['receiver_skew']:.2f}"
        )


def write(path, result: dict) -> None:
    from dodoco.store.atomic import write_json

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(path), result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--zoo", help="folder of traced runs: the placement table instead of speed")
    ap.add_argument("--workers", type=int, default=None, help="count_pairs processes (default: auto)")
    ap.add_argument("--tmp", default=None, help="folder for the temporary trace (about 0.8 GB)")
    ap.add_argument("-o", "--out", default=None, help="result JSON (default bench/results/...)")
    args = ap.parse_args()
    zoo(args) if args.zoo else speed(args)


if __name__ == "__main__":
    main()
