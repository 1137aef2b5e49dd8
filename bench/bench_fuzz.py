"""Benchmark: fuzz DODOCO's readers, writers and CLI with hostile inputs (target: >= 10,000 cases in
under 2 minutes on the 2-core CI machine, 0 failures).

Four families of cases, drawn from one seeded generator, each with its oracle (bench/fuzz_cases.py):

- ``manifest``: one spot of an observed run's manifest.json changed (any value anywhere, a
  deletion, a number bumped), its seal kept, removed or recomputed by a forger; then ``validate`` and
  a reader (open_run, counts, traces). Oracle: a one-line DodocoError, or exactly the original
  fields and counts; an edit under the original seal is never read; validate never raises.
- ``data``: counts.npy, seq_tokens.npy or tokens.npy rewritten (an element changed, layers or
  sequences swapped, experts permuted, another dtype, rows cut) with checksums and seal recomputed.
  Oracle: refused in one line, or (the traces pin the counts) the very original counts.
- ``flags``: a CLI command with random flag values (edge and huge integers, NaN, odd text, a FIFO, a
  device, a folder, a binary file). Oracle: exit 0-3, one ``error:`` line when non-zero, no traceback,
  nothing outside the outputs folder changed.
- ``import``: a random small array (.npy) or table (.csv) imported through the CLI with random
  flags. Oracle: as ``flags``; an array that imports holds exactly its non-empty rows and layers, and
  the run validates.

A failure is any broken oracle (an exception escaping main() is a traceback). The cases are split
over ``--workers`` processes (default: one per core, at most 2), each with its own sandbox and seed
(``seed + worker``); the target counts the whole run, sandbox setup included. Writes
bench/results/fuzz.json: cases, seconds, inputs per second, failures (the first 20 described), per
family its cases, failures and median / p90 milliseconds, and notes generated from this run.

    python bench/bench_fuzz.py [--cases 12000] [--seed 0] [--workers 2] [--max-seconds 100]
                               [--out bench/results/fuzz.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fuzz_cases import CASES, Failure

TARGET_CASES, TARGET_S = 10_000, 120.0
FAMILIES = {"manifest": 0.35, "data": 0.2, "flags": 0.33, "import": 0.12}


def _snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _paths(obj, prefix=()):
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    out = []
    for k, v in items:
        out += [prefix + (k,)] + _paths(v, prefix + (k,))
    return out


def observed_run(path: Path, S: int = 16, T: int = 16, L: int = 4, E: int = 32, K: int = 4, seed: int = 0) -> Path:
    """A run as ``dodoco observe`` writes it (origin observed, its identity, parts finalized, traces,
    metrics.parquet listed), of routing drawn here: each token picks K distinct experts, skewed."""
    from dodoco.analysis import write_metrics
    from dodoco.store.manifest import (
        ConditionInfo,
        ConditionKind,
        Granularity,
        Manifest,
        ModelInfo,
        Origin,
        Routing,
        Status,
    )
    from dodoco.store.writer import RunWriter

    g = np.random.default_rng(seed)
    p = g.dirichlet(np.full(E, 0.5), size=L)
    topk = np.stack([np.stack([g.choice(E, K, replace=False, p=p[l]) for l in range(L)]) for _ in range(S * T)])
    counts = np.zeros((S, L, E), np.uint32)
    for s in range(S):
        for l in range(L):
            counts[s, l] = np.bincount(topk[s * T : (s + 1) * T, l].ravel(), minlength=E)
    identity = {
        "model": "tiny:fuzz",
        "weights": "tiny:fuzz seed 0",
        "tokenizer": "zoo",
        "condition": "mock-uniform",
        "data": "uniform ids over 8192",
        "seq_len": T,
        "sequences": S,
        "seed": 0,
        "dtype": "float32",
        "device": "cpu",
        "batch_size": S,
        "traces": True,
    }
    writer = RunWriter(path, identity, origin=Origin.OBSERVED)
    writer.write_part(0, counts, np.full(S, T, np.int64), topk.astype(np.uint8))
    writer.finalize(
        Manifest(
            status=Status.RUNNING,
            origin=Origin.OBSERVED,
            identity={},
            model=ModelInfo(id="tiny:fuzz"),
            routing=Routing(E=E, K=K, L=L, layer_ids=tuple(range(L))),
            condition=ConditionInfo(
                name="mock-uniform",
                kind=ConditionKind.MOCK,
                provenance={"generator": "uniform", "vocab_size": 8192, "seed": 0},
            ),
            seq_len=T,
            sequences=S,
            granularity=Granularity.SEQUENCE,
            details={"seed": 0},
        )
    )
    write_metrics(path, batch_sizes=(1, 2))
    return path


class Box:
    """The sandbox: a run as observe writes it, with traces, its reference answers, an outputs folder,
    special files, and the user's files that nothing may change."""

    def __init__(self, root: Path):
        from dodoco.store import open_run
        from dodoco.store.manifest import answer_fields

        self.root, self.out, self.outside = root, root / "out", root / "outside"
        for d in (self.out, self.outside, root / "folder", root / "in"):
            d.mkdir()
        (self.outside / "precious.txt").write_text("the user's own file\n")
        (root / "binary.bin").write_bytes(os.urandom(256))
        os.mkfifo(root / "fifo")
        self.run = observed_run(root / "runs" / "mock-uniform-L16")
        self.manifest = (self.run / "manifest.json").read_text()
        self.files = {p.name: p.read_bytes() for p in self.run.iterdir()}
        self.paths = _paths(json.loads(self.manifest))
        ref = open_run(self.run)
        self.critical, self.counts = answer_fields(ref.manifest), np.array(ref.counts)
        self.guarded = self._guarded_now()
        self.specials = [
            str(root / "fifo"),
            "/dev/zero",
            str(root / "folder"),
            str(root / "binary.bin"),
            str(root / "missing.json"),
            str(root / "runs"),
        ]

    def restore(self):
        """The run as observe wrote it (analyze cases rewrite metrics.parquet and the manifest)."""
        for p in self.run.iterdir():
            if p.name not in self.files:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        for name, data in self.files.items():
            if (self.run / name).read_bytes() != data:
                (self.run / name).write_bytes(data)

    def _guarded_now(self) -> dict:
        return _snapshot(self.outside) | {"binary.bin": _snapshot(self.root)["binary.bin"]}

    def untouched(self) -> bool:
        """Whether the user's files are as they were; when not, later cases are judged against them as
        they are now, so one broken oracle counts once, not in every case after it."""
        now = self._guarded_now()
        if now == self.guarded:
            return True
        self.guarded = now
        return False


def fuzz(box: Box, cases: int, seed: int, max_seconds: float) -> dict:
    rng = random.Random(seed)
    names, weights = list(FAMILIES), list(FAMILIES.values())
    times = {n: [] for n in names}
    failures, started = [], time.perf_counter()
    for i in range(cases):
        if time.perf_counter() - started > max_seconds:
            break
        family = rng.choices(names, weights)[0]
        t0 = time.perf_counter()
        try:
            CASES[family](box, rng)
        except Failure as exc:
            failures.append({"case": i, "family": family, "failure": str(exc)})
        except Exception as exc:  # noqa: BLE001 (anything escaping DODOCO's API is a failure found)
            import traceback

            where = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(
                {
                    "case": i,
                    "family": family,
                    "failure": f"{type(exc).__name__} escaped at "
                    f"{Path(where.filename).name}:{where.lineno}: {str(exc)[:160]}",
                }
            )
        finally:
            box.restore()
        times[family].append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return {"times": times, "failures": failures, "wall_s": wall}


def work(job: tuple[int, int, int, float]) -> dict:
    """One worker: its own sandbox (setup untimed here, counted in the total), then its cases."""
    cases, seed, worker, max_seconds = job
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    with tempfile.TemporaryDirectory(prefix=f"dodoco-fuzz{worker}-") as tmp:
        box = Box(Path(tmp))
        cwd = os.getcwd()
        os.chdir(box.out)  # a relative output path lands in the outputs folder
        try:
            res = fuzz(box, cases, seed + worker, max_seconds)
        finally:
            os.chdir(cwd)
    for f in res["failures"]:
        f["worker"] = worker
    return res


def run_workers(cases: int, seed: int, workers: int, max_seconds: float) -> dict:
    """Every worker's result merged: times per family, failures, the slowest worker's fuzzing wall."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(cases // workers + (w < cases % workers), seed, w, max_seconds) for w in range(workers)]
    if workers == 1:
        parts = [work(jobs[0])]
    else:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"  # nothing heavy is imported yet
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
            parts = list(pool.map(work, jobs))
    return {
        "times": {f: sum((p["times"][f] for p in parts), []) for f in FAMILIES},
        "failures": sum((p["failures"] for p in parts), []),
        "wall_s": max(p["wall_s"] for p in parts),
    }


def summarise(res: dict, seed: int, workers: int, total_s: float) -> dict:
    times, wall = res["times"], total_s
    n = sum(len(t) for t in times.values())
    fams = {
        f: {
            "cases": len(t),
            "failures": sum(x["family"] == f for x in res["failures"]),
            "median_ms": round(1000 * statistics.median(t), 2) if t else None,
            "p90_ms": round(1000 * float(np.percentile(t, 90)), 2) if t else None,
        }
        for f, t in times.items()
    }
    slowest = max((f for f in fams if fams[f]["cases"]), key=lambda f: fams[f]["median_ms"])
    met = n >= TARGET_CASES and wall < TARGET_S
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    notes = [
        f"{n} cases in {wall:.1f} s (sandboxes included; fuzzing {res['wall_s']:.1f} s) with {workers} worker "
        f"process(es) on {os.cpu_count()} CPU core(s), load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) at "
        f"the end: {n / wall:.0f} inputs per second; target >= {TARGET_CASES} cases in < {TARGET_S:.0f} s "
        f"{'met' if met else 'missed'}",
        f"{len(res['failures'])} failure(s) found"
        + (f", first: {res['failures'][0]['family']}: {res['failures'][0]['failure']}" if res["failures"] else ""),
        f"slowest family: {slowest} (median {fams[slowest]['median_ms']} ms, p90 {fams[slowest]['p90_ms']} ms); "
        + ", ".join(f"{f} {v['cases']}" for f, v in fams.items()),
    ]
    import dodoco

    return {
        "benchmark": "fuzz",
        "seed": seed,
        "workers": workers,
        "target": {"cases": TARGET_CASES, "seconds": TARGET_S, "met": met},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "dodoco": dodoco.__version__,
        },
        "cases": n,
        "seconds": round(wall, 2),
        "fuzzing_seconds": round(res["wall_s"], 2),
        "inputs_per_s": round(n / wall, 1),
        "failures": len(res["failures"]),
        "failed_cases": res["failures"][:20],
        "families": fams,
        "notes": notes,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=12_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--max-seconds", type=float, default=100.0, help="per worker, after its sandbox is made")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "fuzz.json"))
    args = ap.parse_args(argv)
    started = time.perf_counter()
    res = run_workers(args.cases, args.seed, args.workers, args.max_seconds)
    result = summarise(res, args.seed, args.workers, time.perf_counter() - started)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(result["notes"]))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
