"""A/B timing harness shared by the benches: the same workload, timed in fresh processes, for the
current source tree and optionally a baseline tree (e.g. ``git archive <commit> src | tar -x -C
/tmp/old``), interleaved (A B B A A B ...) so that the load of a shared machine hits both alike.

A bench script calls ``main(name, workload_code, ...)``: ``workload_code`` is Python source that,
run with ``dodoco`` importable, defines ``setup() -> state`` (untimed) and ``run(state) -> rows``
(timed). The result JSON holds the medians of wall and CPU seconds of each side, their ratio
(current / baseline) and notes generated from this run (load average, spread).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

_WORKER = r"""
import json, sys, time
{code}
state = setup()
t0, c0 = time.perf_counter(), time.process_time()
rows = run(state)
print(json.dumps({{"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "rows": rows}}))
"""


def _once(code: str, src: str | None) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = str(Path(src).resolve())
    out = subprocess.run(
        [sys.executable, "-c", _WORKER.format(code=code)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _side(times: list[dict]) -> dict:
    wall, cpu = [t["wall_s"] for t in times], [t["cpu_s"] for t in times]
    return {
        "median_s": round(statistics.median(wall), 4),
        "cpu_median_s": round(statistics.median(cpu), 4),
        "times_s": [round(w, 4) for w in wall],
        "cpu_s": [round(c, 4) for c in cpu],
        "rows": times[-1]["rows"],
    }


def run_ab(code: str, repeats: int, baseline: str | None) -> dict:
    """Time ``code`` ``repeats`` times for the current tree (and the baseline tree), interleaved."""
    from rich.progress import Progress

    cur, base = [], []
    load_before = os.getloadavg()
    with Progress(transient=True) as progress:
        task = progress.add_task("timing (fresh process per repeat)", total=repeats * (2 if baseline else 1))
        for i in range(repeats):
            order = [("cur", None), ("base", baseline)] if i % 2 == 0 else [("base", baseline), ("cur", None)]
            for side, src in order:
                if side == "base" and not baseline:
                    continue
                (cur if side == "cur" else base).append(_once(code, src))
                progress.advance(task)
    out = {"current": _side(cur), "load_before_after": [round(x, 2) for x in load_before + os.getloadavg()]}
    if base:
        out["baseline"] = _side(base)
        out["baseline_src"] = str(baseline)
        out["ratio_wall"] = round(out["current"]["median_s"] / out["baseline"]["median_s"], 3)
        out["ratio_cpu"] = round(out["current"]["cpu_median_s"] / out["baseline"]["cpu_median_s"], 3)
    return out


def notes(res: dict, target_s: float) -> list[str]:
    """Sentences about this run, from its own numbers."""
    c = res["current"]
    spread = (max(c["times_s"]) - min(c["times_s"])) / c["median_s"] if c["median_s"] else 0.0
    out = [
        f"median {c['median_s']:.2f} s wall, {c['cpu_median_s']:.2f} s CPU over {len(c['times_s'])} "
        f"repeats ({'meets' if c['median_s'] <= target_s else 'misses'} the {target_s:.0f} s target); "
        f"wall times spread {100 * spread:.0f}% around the median",
        f"load average {res['load_before_after'][0]:.2f} before, {res['load_before_after'][3]:.2f} after "
        f"(on {os.cpu_count()} CPUs: other processes inflate wall time, CPU time less so)",
    ]
    if "baseline" in res:
        out.append(
            f"baseline ({res['baseline_src']}) median {res['baseline']['median_s']:.2f} s wall, "
            f"{res['baseline']['cpu_median_s']:.2f} s CPU, timed interleaved with the current tree "
            f"in the same run: current / baseline = {res['ratio_wall']:.2f} wall, "
            f"{res['ratio_cpu']:.2f} CPU"
        )
    return out


def write(path, name: str, res: dict, target_s: float, extra: dict) -> dict:
    """The result JSON (atomic write) with machine, target and notes."""
    from dodoco.store.atomic import write_json

    doc = {
        "benchmark": name,
        "median_s": res["current"]["median_s"],
        **res,
        **extra,
        "target_s": target_s,
        "meets_target": res["current"]["median_s"] <= target_s,
        "notes": notes(res, target_s),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    write_json(Path(path), doc)
    return doc
