"""AlltoAll replay benchmark: uniform sweep, real / mock / balanced / skew replays, GEMM table, model error.

One call measures everything issue 4 asks of the GPU machine:

    PYTHONPATH=src NCCL_NVLS_ENABLE=0 python bench/bench_replay.py --trace bench/data/replay-trace \
        --ranks 2,4 --machine nvidia-h200-x4 --out $OUT
    python bench/bench_replay.py --simulate bench/data/simulate-trace --cluster dgx-h200   # CPU only

For each N in --ranks (CUDA_VISIBLE_DEVICES=0..N-1, so N=2 runs on two GPUs of the same machine):
``dodoco replay`` of the real condition, the mock condition, the balanced control of the same
bytes and synthetic receiver-skew controls, plus the raw all_to_all_single sweep 1 KB..512 MB per
rank; then the grouped-GEMM table of the expert shape on GPU 0; then the simulator's calibration and
its error on the held-out imbalanced replays, and the targets. Writes, under --out:
``replay-<machine>.json`` (everything) and ``topology.txt`` (expert compute: bench/bench_compute.py).
``--backend gloo`` makes a CPU dry run of the same pipeline (timings meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dodoco.replay.config import ReplayConfig  # noqa: E402
from dodoco.replay.launch import launch  # noqa: E402
from dodoco.replay.results import overhead_rows  # noqa: E402
from dodoco.store.atomic import write_json  # noqa: E402

SAFE_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
    "PYTHONUNBUFFERED": "1",
}
ANCHOR = "public NVLink4 alltoall busbw on H100 nodes: about 330-370 GB/s"


def skews(N: int) -> list[float]:
    base = [1.25, 1.5, 1.75, 2.0] if N == 2 else [1.25, 1.5, 2.0, 3.0]
    return [r for r in base if r <= N]


def run_notes(machine: str, results: list[dict]) -> list[str]:
    """Notes made from the replays' own records: where each N ran, and what trace it replayed."""
    m = re.search(r"-x(\d+)$", machine)
    gpus = int(m.group(1)) if m else 1
    notes = []
    for r in results:
        d, src = r["device"], r["source"]["real"]
        subset = f" ({r['N']} of its {gpus} GPUs)" if gpus > r["N"] else ""
        notes.append(
            f"N={r['N']}: {d.get('count', '?')} visible {d.get('name', '?')} on {machine}{subset}; trace "
            f"{src['model']} {src['condition']} (E={src['E']}, {src['S']} sequences of {src['seq_len']} "
            f"tokens), {r['batch']} sequences per rank per step, H={r['hidden']} {r['dtype']}"
        )
    return notes


def renote(paths) -> int:
    """Regenerate the notes of existing result files from their own replays (no hand edits)."""
    for p in map(Path, paths):
        doc = json.loads(p.read_text())
        doc["notes"] = run_notes(doc["machine"], doc["replays"])
        write_json(p, doc)
        print(p, *doc["notes"], sep="\n  ")
    return 0


def replay_one(args, N: int, out: Path) -> dict | None:
    env = dict(SAFE_ENV, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if args.backend == "nccl":
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(N))
    note = f"N={N} on {args.machine}" + (
        " (2 of its GPUs: a deliberate device-time saving, not an nvidia-h200-x2 machine)"
        if N == 2 and "x4" in args.machine
        else ""
    )
    cfg = ReplayConfig(
        runs=(args.trace,),
        condition=args.condition,
        mock=args.mock,
        batch=args.batch,
        hidden=args.hidden,
        backend=args.backend,
        skew=tuple(skews(N)),
        iters=args.iters,
        warmup=args.warmup,
        sweep=True,
        sweep_max=args.sweep_max,
        timeout_s=args.timeout,
        dispatcher=("nccl",),
        buffers=4,
        out=str(out / f"replay-n{N}.json"),
        note=note,
    )
    t0 = time.time()
    try:
        res = launch(cfg, N, extra_env=env)
    except Exception as exc:  # keep going: the other N still count
        print(f"bench: replay N={N} failed after {time.time() - t0:.0f} s: {exc}", flush=True)
        return None
    print(f"bench: replay N={N} took {time.time() - t0:.0f} s", flush=True)
    return res


def targets(results: list[dict], out: Path) -> dict:
    """The simulator's fit, choice and held-out validation on these replays (dodoco.simulate.fit)."""
    from dodoco.simulate.fit import calibrate
    from dodoco.simulate.samples import load_groups
    from dodoco.simulate.holdout import target_rows, validation_rows

    tmp = out / "replays-for-calibration.json"
    write_json(tmp, {"replays": results})
    groups, sources = load_groups([tmp])
    cal, records = calibrate(groups, sources)
    val = validation_rows(records, groups)
    out_d = {"calibration": cal.to_dict(), "validation": val, "targets": {}}
    for t in target_rows(records, groups):
        out_d["targets"][f"sim_err_N{t['N']}"] = t
    for res in results:
        N = res["N"]
        ov = overhead_rows(res)
        if ov:
            out_d["targets"][f"overhead_N{N}"] = {
                **ov[0],
                "target_pct": 5.0,
                "met": abs(ov[0]["overhead_pct_median"]) <= 5.0,
            }
        big = [s for s in res["sweep"] if s["bytes_per_rank"] == 256 << 20]
        if big:
            out_d["targets"][f"busbw_256MB_N{N}"] = {"busbw_GBps": big[0]["busbw_GBps"], "anchor": ANCHOR}
    return out_d


def simulate(args) -> int:
    """--simulate TRACE: `dodoco simulate` on a cluster (its preset calibration unless --calibration)."""
    from dodoco.simulate.api import SimulateConfig, simulate as run_simulate

    rows, skipped, res = [], [], None
    for batch, placement in ((1, "contiguous"), (1, "eplb"), (4, "contiguous")):
        cfg = SimulateConfig(
            runs=(args.simulate,),
            cluster=args.cluster,
            ep=(8, 16, 32, 64, 128, 256),
            batch=batch,
            hidden=args.hidden,
            expert_width=args.expert_width,
            placement=placement,
            calibration=(args.calibration,) if args.calibration else None,
        )
        res = run_simulate(cfg)
        rows += res.rows
        skipped += [{**s, "batch": batch, "placement": placement} for s in res.skipped]
    doc = {
        "cluster": args.cluster,
        "calibration": res.calibration,
        "trace": args.simulate,
        "hidden": args.hidden,
        "dtype": "bf16",
        "expert_width": args.expert_width,
        "rows": rows,
        "skipped": skipped,
        "notes": res.notes + ["eplb fitted on half of the sequences, evaluated on the other half (part = held-out)"],
    }
    write_json(Path(args.out) / f"replay-simulate-{args.cluster}.json", doc)
    print(json.dumps([{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trace", default=str(ROOT / "bench/data/replay-trace"))
    p.add_argument("--condition", default="prose")
    p.add_argument("--mock", default="mock-uniform")
    p.add_argument("--ranks", default="2,4")
    p.add_argument("--machine", default="local")
    p.add_argument("--backend", default="nccl")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--expert-width", type=int, default=768)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--sweep-max", type=int, default=512 << 20)
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--out", default=str(ROOT / "bench/results"))
    p.add_argument(
        "--simulate",
        default=None,
        metavar="TRACE",
        help="only predict (no GPU): EP 8..256 "
        "for the runs in TRACE, with --cluster, --calibration (expert compute: bench/bench_compute.py)",
    )
    p.add_argument("--cluster", default="dgx-h200")
    p.add_argument("--calibration", default=None, help="calibration JSON or replay results (default: the preset's)")
    p.add_argument(
        "--renote",
        nargs="+",
        default=None,
        metavar="FILE",
        help="only regenerate the notes of these result files from their own replays",
    )
    return p


def _topology(out: Path) -> str:
    """nvidia-smi's topology and clocks, kept beside the results (topology.txt)."""
    topo = subprocess.run(
        "nvidia-smi topo -m; nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,memory.used --format=csv",
        shell=True,
        capture_output=True,
        text=True,
    )
    (out / "topology.txt").write_text(topo.stdout + topo.stderr)
    return topo.stdout


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.renote:
        return renote(args.renote)
    if args.simulate:
        return simulate(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.update(SAFE_ENV)
    if args.backend == "nccl":
        print(_topology(out), flush=True)
    results = [r for r in (replay_one(args, int(n), out) for n in args.ranks.split(",")) if r]
    summary = targets(results, out) if results else {}
    topo = (out / "topology.txt").read_text() if (out / "topology.txt").exists() else ""
    combined = {
        "machine": args.machine,
        "device": results[-1]["device"] if results else {},
        "topology": topo,
        "replays": results,
        **summary,
        "notes": run_notes(args.machine, results),
    }
    write_json(out / f"replay-{args.machine}.json", combined)
    print(json.dumps(summary.get("targets", {}), indent=1, default=str), flush=True)
    for r in summary.get("validation", []):  # held-out routing error, dodoco.simulate.holdout
        print(r, flush=True)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
