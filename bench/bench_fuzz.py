"""Benchmark: fuzz DODOCO's readers, writers and CLI with hostile inputs (target: >= 10,000 cases in
under 2 minutes on the 2-core CI machine, 0 failures).

Four families of cases, drawn from one seeded generator, each with its oracle:

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
import contextlib
import hashlib
import io
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
        self.guarded = _snapshot(self.outside) | {"binary.bin": _snapshot(root)["binary.bin"]}
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

    def untouched(self) -> bool:
        return (_snapshot(self.outside) | {"binary.bin": _snapshot(self.root)["binary.bin"]}) == self.guarded


class Failure(Exception):
    pass


def _read(run):
    from dodoco.store import open_run
    from dodoco.store.manifest import answer_fields

    r = open_run(run)
    counts = np.array(r.counts)
    r.tokens()
    return answer_fields(r.manifest), counts


def _one_line(exc):
    if not str(exc) or "\n" in str(exc):
        raise Failure(f"not one line: {str(exc)[:200]!r}")


def _value(rng: random.Random):
    return rng.choice(
        [
            None,
            True,
            0,
            1,
            -1,
            2,
            7,
            8,
            16,
            32,
            128,
            2**31,
            2**63,
            10**20,
            -(10**20),
            0.5,
            float(1e308),
            "",
            "x",
            "mock",
            "real",
            "sequence",
            "window",
            [],
            [1, 2],
            {},
            {"a": 1},
            [[1]],
        ]
    )


def case_manifest(box: Box, rng: random.Random) -> str:
    from dodoco.errors import DodocoError
    from dodoco.store import validate_run
    from dodoco.store.manifest import seal_of

    d = json.loads(box.manifest)
    path, op, seal = (
        rng.choice(box.paths),
        rng.choice(["set", "delete", "bump"]),
        rng.choice(["kept", "removed", "recomputed"]),
    )
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    if op == "delete":
        del parent[path[-1]]
    elif op == "bump" and isinstance(old, int) and not isinstance(old, bool):
        parent[path[-1]] = old + rng.choice([-2, -1, 1, 2, 1000])
    else:
        parent[path[-1]] = _value(rng)
    if seal == "removed":
        d.pop("seal", None)
    elif seal == "recomputed" and "seal" in d:
        d["seal"] = seal_of(d)
    (box.run / "manifest.json").write_text(json.dumps(d))
    what = f"{op} {'/'.join(map(str, path))} (seal {seal})"
    problems = validate_run(box.run)
    try:
        got = _read(box.run)
    except DodocoError as exc:
        _one_line(exc)
        if not problems:
            raise Failure(f"{what}: a reader refused what validate calls sound") from None
        return what
    if got[0] != box.critical or not np.array_equal(got[1], box.counts):
        raise Failure(f"{what}: read with other fields or counts")
    original = {k: v for k, v in json.loads(box.manifest).items() if k != "seal"}
    if seal == "kept" and {k: v for k, v in d.items() if k != "seal"} != original:
        raise Failure(f"{what}: an edit under the original seal was read")
    return what


def case_data(box: Box, rng: random.Random) -> str:
    from dodoco.errors import DodocoError
    from dodoco.store import validate_run
    from dodoco.store.atomic import sha256_file
    from dodoco.store.manifest import seal_of

    name = rng.choice(["counts.npy", "counts.npy", "seq_tokens.npy", "tokens.npy"])
    hows = ["element", "swap-rows", "dtype", "cut"] + (["swap-layers", "permute"] if name != "seq_tokens.npy" else [])
    a, how = np.load(box.run / name), rng.choice(hows)
    g = np.random.default_rng(rng.getrandbits(32))
    if how == "element":
        idx = tuple(int(g.integers(0, n)) for n in a.shape)
        a[idx] = a[idx] + 1 if a[idx] < np.iinfo(a.dtype).max else 0
    elif how == "swap-layers" and a.ndim == 3:
        a = a[:, [1, 0, *range(2, a.shape[1])]]
    elif how == "swap-rows":
        a = a[[1, 0, *range(2, a.shape[0])]]
    elif how == "permute" and a.ndim == 3:
        s = int(g.integers(0, a.shape[0]))
        a[s] = a[s][..., g.permutation(a.shape[-1])] if name == "counts.npy" else a[s][g.permutation(a.shape[1])]
    elif how == "dtype":
        a = a.astype(rng.choice([np.int64, np.int32, np.uint16, np.float32]))
    elif how == "cut":
        a = a[:-1]
    np.save(box.run / name, a)
    d = json.loads(box.manifest)
    d["files"][name].update(
        sha256=sha256_file(box.run / name),
        bytes=(box.run / name).stat().st_size,
        shape=list(a.shape),
        dtype=str(a.dtype),
    )
    d["seal"] = seal_of(d)
    (box.run / "manifest.json").write_text(json.dumps(d))
    what = f"{how} of {name}"
    problems = validate_run(box.run)
    try:
        got = _read(box.run)
    except DodocoError as exc:
        _one_line(exc)
        if not problems:
            raise Failure(f"{what}: a reader refused what validate calls sound") from None
        return what
    if not np.array_equal(got[1], box.counts) or problems:
        raise Failure(f"{what}: read other counts, or read what validate refuses ({problems[:1]})")
    return what


def _int(rng):
    return rng.choice(
        [
            "-1",
            "0",
            "1",
            "2",
            "4",
            "8",
            "64",
            str(2**31),
            str(2**63),
            str(2**70),
            "10000000000",
            "1e3",
            "",
            "nan",
            "inf",
            "x",
            str(rng.randint(1, 10**6)),
        ]
    )


def _flag_argv(box: Box, rng: random.Random) -> list[str]:
    any_value = [_int(rng), rng.choice(box.specials), rng.choice(["bogus", "eplb", "h100", "prefill", "\udcff", "-"])]
    run = str(box.run)
    families = [
        (["validate", rng.choice(box.specials + [run])], {}),
        (
            ["recommend", "--hardware", "h100", "--ep", "4"],
            {
                "--ep": _int(rng),
                "--skew": rng.choice(["nan", "inf", "1.2", "0.5", "x"]),
                "--batch": _int(rng),
                "--run": rng.choice(box.specials + [run]),
                "--replay": rng.choice(box.specials),
                "--hardware": rng.choice(["h100", "bogus", ""]),
            },
        ),
        (
            ["analyze", run],
            {
                "--batch": _int(rng),
                "--ep": _int(rng),
                "--seed": _int(rng),
                "--placement": rng.choice(["bogus", "eplb", "contiguous"]),
                "--config": rng.choice(box.specials),
                "--json": str(box.out / "a.json"),
            },
        ),
        (
            ["import", "numpy", rng.choice(box.specials), "-o", str(box.out / "r")],
            {"--num-experts": _int(rng), "--top-k": _int(rng), "--layer-ids": _int(rng), "--seq-len": _int(rng)},
        ),
        (
            [
                "observe",
                "--model",
                "tiny:nosuch",
                "--conditions",
                "prose",
                "--seq-len",
                "8",
                "--sequences",
                "2",
                "--out",
                str(box.out / "obs"),
            ],
            {
                "--seq-len": _int(rng),
                "--sequences": _int(rng),
                "--seed": _int(rng),
                "--device": rng.choice(["bogus", "cuda:99999", "cpu"]),
                "--batch-size": _int(rng),
            },
        ),
        (
            ["findings", run, "--batch", "1"],
            {"--threshold": rng.choice(["nan", "inf", "-1", "x"]), "--seed": _int(rng), "--groups": _int(rng)},
        ),
    ]
    head, flags = rng.choice(families)
    argv = list(head)
    for k in rng.sample(sorted(flags), k=min(len(flags), rng.randint(0, 2))):
        argv += [k, flags[k] if rng.random() < 0.8 else rng.choice(any_value)]
    return argv


def _cli(argv: list[str]) -> tuple[int, str]:
    """main(argv) -> (exit code, stderr), every oracle of a CLI call checked (validate's exit 1 is its
    result: the problems, one per line on stdout)."""
    from dodoco.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except Exception as exc:  # noqa: BLE001 (a traceback: a failure found)
            raise Failure(f"{type(exc).__name__} escaped main: {str(exc)[:160]}") from None
    text = err.getvalue()
    lines = text.replace("\r", "\n").strip().splitlines()
    if rc not in (0, 1, 2, 3) or "Traceback" in text:
        raise Failure(f"exit {rc}: {text[-200:]!r}")
    if rc == 1 and argv[0] == "validate" and not lines and out.getvalue().strip():
        return rc, text
    if rc and not (lines and lines[-1].startswith("error: ") and sum(x.startswith("error:") for x in lines) == 1):
        raise Failure(f"exit {rc} without one error line: {text[-200:]!r}")
    return rc, text


def case_flags(box: Box, rng: random.Random) -> str:
    argv = _flag_argv(box, rng)
    _cli(argv)
    if not box.untouched():
        raise Failure("a file outside the outputs changed")
    return " ".join(argv[:1] + argv[-4:])


def case_import(box: Box, rng: random.Random) -> str:
    from dodoco.store import open_run

    g = np.random.default_rng(rng.getrandbits(32))
    run = box.out / f"imp{rng.getrandbits(40)}"
    if rng.random() < 0.6:
        shape = [rng.randint(0, 4) for _ in range(rng.choice([1, 2, 3, 3, 3, 4]))]
        dtype = rng.choice(["uint32", "uint32", "int64", "int32", "float64", "bool"])
        a = g.integers(-1 if dtype.startswith("int") else 0, 4, size=shape).astype(dtype)
        f = box.root / "in" / "a.npy"
        np.save(f, a)
        argv = ["import", "numpy", str(f), "-o", str(run)]
    else:
        rows = [
            (rng.choice([0, 1, 2, -1, 70000]), rng.choice([0, 1, 2, 3, -2, 10**9]), rng.choice([0, 1, 5, -3, 2**40]))
            for _ in range(rng.randint(0, 5))
        ]
        f, a = box.root / "in" / "t.csv", None
        f.write_text("layer,expert,count\n" + "".join(f"{x},{y},{z}\n" for x, y, z in rows))
        argv = ["import", "table", str(f), "-o", str(run)]
    if rng.random() < 0.3:
        argv += [rng.choice(["--num-experts", "--top-k", "--seq-len"]), _int(rng)]
    rc, _ = _cli(argv)
    if not box.untouched() or list(box.out.glob(".*dodoco-import")):
        raise Failure("an import touched a file outside its run, or left its scratch folder")
    if rc == 0:
        if _cli(["validate", str(run)])[0] != 0:
            raise Failure(f"{' '.join(argv[:2])}: an imported run does not validate")
        if a is not None and len(argv) == 5:
            want = a[None] if a.ndim == 2 else a
            want = want[:, want.sum(axis=(0, 2)) > 0]
            want = want[want.sum(axis=(1, 2)) > 0]
            if not np.array_equal(np.asarray(open_run(run).counts), want):
                raise Failure(f"numpy {list(a.shape)} {a.dtype}: imported other counts")
    shutil.rmtree(run, ignore_errors=True)
    return " ".join(argv[:2])


CASES = {"manifest": case_manifest, "data": case_data, "flags": case_flags, "import": case_import}


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
