"""Benchmark: mutation score of the core modules (mutmut), with every surviving mutant explained.

The core modules are the pure computations every answer rests on: the metrics, the step former,
rank loads and traffic, placements and their fitting policy, the dispatch model's forms and fit,
the replay plan and the store's checksum verification (``CORE``). mutmut mutates them one change at
a time (an operator, a constant, a call) and runs the tests that cover the changed function
(``TESTS``); a mutant the tests let through "survives". Each survivor must be killed by a test or
listed in ``EQUIVALENT`` with the reason its change cannot alter a result (a fast path that gives
the same values, a warning filter, ...). Lines that only word a user-facing error message are not
mutated (``SKIP_LINES``): the tests check each message's values and fix, not its wording.

Writes bench/results/mutation.json: the score (killed / (mutants - equivalent)), the counts per
status and per module, every equivalent survivor with its reason, and every unexplained survivor
with its diff (there must be none). Runs outside pytest, on a copy of the tree (``--work``):

    .venv/bin/python bench/bench_mutation.py [--children 2] [--work /tmp/dodoco-mutation]

About 10-20 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "mutation.json"

#: The core modules (issue 23: metrics, ep, placement, simulate fit/forms, replay plan, store verify; issue
#: 19: the expert-compute features and held-out scoring).
CORE = [
    "src/dodoco/metrics/imbalance.py",
    "src/dodoco/metrics/stats.py",
    "src/dodoco/metrics/schema.py",
    "src/dodoco/ep/steps.py",
    "src/dodoco/ep/traffic.py",
    "src/dodoco/ep/loads.py",
    "src/dodoco/ep/layout.py",
    "src/dodoco/ep/placements.py",
    "src/dodoco/simulate/forms.py",
    "src/dodoco/simulate/fit.py",
    "src/dodoco/replay/plan.py",
    "src/dodoco/store/verify.py",
    "src/dodoco/compute/features.py",
    "src/dodoco/compute/holdout.py",
]
#: The tests that exercise them (mutmut runs, per mutant, those of these that cover its function).
TESTS = [
    "tests/metrics",
    "tests/test_metrics_table.py",
    "tests/ep/test_steps.py",
    "tests/ep/test_loads_traffic.py",
    "tests/ep/test_placement.py",
    "tests/ep/test_placements.py",
    "tests/ep/test_ep_core.py",
    "tests/ep/test_steps_mutants.py",
    "tests/ep/test_loads_traffic_mutants.py",
    "tests/replay/test_plan.py",
    "tests/simulate/test_dispatch_model.py",
    "tests/simulate/test_sample_roles.py",
    "tests/simulate/test_held_out.py",
    "tests/simulate/test_model_mutants.py",
    "tests/store/test_verify_cache.py",
    "tests/store/test_verify_refusals.py",
    "tests/compute/test_model.py",
    "tests/compute/test_kernels.py",
    "tests/compute/test_features_mutants.py",
]
#: Lines not mutated: the wording of user-facing error messages (raise lines and the string literals
#: continuing them). Tests check what each message names, not its words.
SKIP_LINES = [r"raise (DodocoError|ValueError)\(", r"^\s*f?\"[^\"]*\"\)*,?\s*(#.*)?$"]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_equivalents import EQUIVALENT  # noqa: E402  (module, function, mutated line, reason)


def _config() -> str:
    q = lambda xs: "[" + ", ".join(json.dumps(x) for x in xs) + "]"  # noqa: E731
    return (
        f'\n[tool.mutmut]\nsource_paths = ["src"]\nonly_mutate = {q(CORE)}\n'
        f"pytest_add_cli_args_test_selection = {q(TESTS)}\n"
        f'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n'
        f"do_not_mutate_patterns = {q(SKIP_LINES)}\n"
    )


def _prepare(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(re.sub(r"\n\[tool\.mutmut\][\s\S]*?(?=\n\[|\Z)", "", text) + _config())


def _mutmut(work: Path, *args: str, timeout: int = 7200) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", *args], cwd=work, capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0 and args[0] != "run":
        raise RuntimeError(f"mutmut {' '.join(args)} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return out.stdout


def _functions(work: Path, module: str) -> dict[str, str]:
    """Source of every function in mutmut's mutated copy of ``module`` (original and mutants), by name."""
    import ast

    path = work / "mutants" / "src" / Path(*module.split(".")).with_suffix(".py")
    text = path.read_text()
    lines = text.splitlines()
    return {
        n.name: "\n".join(lines[n.lineno - 1 : n.end_lineno])
        for n in ast.walk(ast.parse(text))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in n.name
    }


def _diff(sources: dict[str, str], name: str) -> list[str]:
    """The lines a mutant changes against its function's original."""
    import difflib

    fn = name.rpartition(".")[2]
    orig, mut = sources.get(fn.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", ""), sources.get(fn, "")

    def lines(src: str, name: str) -> list[str]:  # the def line without the function's (mutant) name
        return [x.strip().replace(name, "") for x in src.splitlines()]

    return [
        x
        for x in difflib.unified_diff(
            lines(orig, fn.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"), lines(mut, fn), lineterm="", n=0
        )
        if x[:1] in "+-" and not x.startswith(("+++", "---"))
    ]


def _split(name: str) -> tuple[str, str]:
    """mutant name -> (module, function): dodoco.ep.steps.xǁStepSourceǁlevel__mutmut_3 -> ..."""
    module, _, rest = name.rpartition(".")
    func = rest.rsplit("__mutmut_", 1)[0]
    return module, func.replace("xǁ", "").replace("ǁ", ".").removeprefix("x_")


def _equivalent(module: str, func: str, diff: list[str]) -> str | None:
    """The reason of the first rule matching the survivor's module, function and an added line."""
    added = [x for x in diff if x.startswith("+")] or diff  # a mutant that only deletes: match its removed line
    for mod, fn, pattern, reason in EQUIVALENT:
        if module.endswith(mod) and re.fullmatch(fn, func) and any(re.search(pattern, x) for x in added):
            return reason
    return None


def _classify(work: Path, statuses: dict) -> tuple:
    """(counts per status, per module, equivalent survivors with their reason, unexplained survivors)."""
    counts: dict[str, int] = {}
    per_module: dict[str, dict[str, int]] = {}
    equivalent, unexplained = [], []
    sources: dict[str, dict[str, str]] = {}
    for name, status in sorted(statuses.items()):
        module, func = _split(name)
        counts[status] = counts.get(status, 0) + 1
        m = per_module.setdefault(module, {})
        m[status] = m.get(status, 0) + 1
        if status not in ("survived", "no tests"):
            continue
        if module not in sources:
            sources[module] = _functions(work, module)
        diff = _diff(sources[module], name)
        reason = _equivalent(module, func, diff)
        row = {"mutant": name, "module": module, "function": func, "status": status, "diff": diff}
        (equivalent if reason else unexplained).append({**row, "reason": reason} if reason else row)
    return counts, per_module, equivalent, unexplained


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=2, help="mutants run in parallel (default 2)")
    ap.add_argument("--work", default="/tmp/dodoco-mutation", help="copy of the tree mutmut works in")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--report-only", action="store_true", help="re-read the results of the last run in --work")
    args = ap.parse_args()
    work = Path(args.work)
    t0 = time.perf_counter()
    if not args.report_only:
        _prepare(work)
        _mutmut(work, "run", "--max-children", str(args.children))
    wall = time.perf_counter() - t0
    if args.report_only and Path(args.out).exists():  # the run's own time, not the re-read's
        wall = json.loads(Path(args.out).read_text()).get("wall_s", wall)
    statuses = {}
    for line in _mutmut(work, "results", "--all", "true").splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            statuses[name] = status
    counts, per_module, equivalent, unexplained = _classify(work, statuses)
    total = sum(counts.values())
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    scored = total - len(equivalent)
    doc = {
        "bench": "mutation",
        "tool": "mutmut " + _mutmut(work, "--version").strip().split()[-1],
        "core": CORE,
        "tests": TESTS,
        "skipped_lines": SKIP_LINES,
        "wall_s": round(wall, 1),
        "mutants": total,
        "counts": counts,
        "per_module": per_module,
        "score": round(killed / scored, 4) if scored else None,
        "score_raw": round(killed / total, 4) if total else None,
        "score_definition": "(killed + timeout) / (mutants - equivalent survivors); raw: / mutants",
        "target": 0.90,
        "equivalent": equivalent,
        "unexplained_survivors": unexplained,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(
        f"mutation score {doc['score']} ({killed} killed of {scored} scored; {len(equivalent)} equivalent, "
        f"{len(unexplained)} unexplained survivors) in {wall:.0f} s -> {args.out}"
    )
    return 0 if doc["score"] is not None and doc["score"] >= doc["target"] and not unexplained else 1


if __name__ == "__main__":
    sys.exit(main())
