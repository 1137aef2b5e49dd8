"""The replay result (schema ``dodoco.replay/1``): assembly, per-condition summary, table rows.

Per condition the summary averages over its cases (steps x layers): dispatch and combine times are
the mean of the per-case medians (and of the p10 / p90), bytes the mean per-rank buffer, bandwidth
from those means, and ``vs_balanced`` the ratio of the mean dispatch time to the balanced control's
over cases with the same per-rank send rows (so the same bytes). docs/dispatch.md.
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["SCHEMA", "assemble", "load_results", "overhead_rows", "summary_rows", "sweep_rows"]

SCHEMA = "dodoco.replay/1"


def _key(row: dict) -> tuple:
    return tuple(int(x) for x in np.asarray(row["splits"]).sum(1))


def _mean(rows: list[dict], path: tuple[str, ...]) -> float:
    vals = []
    for r in rows:
        v = r
        for p in path:
            v = v[p]
        vals.append(float(v))
    return float(np.mean(vals)) if vals else float("nan")


def summary_rows(result: dict) -> list[dict]:
    """One row per condition: mean over its cases of times, bytes, skew, bandwidth, vs balanced."""
    N, cases = result["N"], result["cases"]
    bal = {}
    for r in cases:
        if r["kind"] == "balanced":
            bal.setdefault(_key(r), []).append(r["dispatch"]["median_ms"])
    out = []
    for cond in dict.fromkeys(r["condition"] for r in cases):
        rows = [r for r in cases if r["condition"] == cond]
        d = _mean(rows, ("dispatch", "median_ms"))
        per_rank = _mean(rows, ("per_rank",))
        ref = [float(np.mean(bal[_key(r)])) for r in rows if _key(r) in bal]
        alg = per_rank / (d * 1e-3) / 1e9 if d > 0 else float("nan")
        out.append({
            "condition": cond, "kind": rows[0]["kind"], "N": N, "cases": len(rows),
            "MB_per_rank": per_rank / 1e6, "recv_skew": _mean(rows, ("receiver_skew",)),
            "dispatch_ms": d, "dispatch_p10": _mean(rows, ("dispatch", "p10_ms")),
            "dispatch_p90": _mean(rows, ("dispatch", "p90_ms")),
            "combine_ms": _mean(rows, ("combine", "median_ms")),
            "algbw_GBps": alg, "busbw_GBps": alg * (N - 1) / N,
            "vs_balanced": d / float(np.mean(ref)) if ref else float("nan"),
        })
    return out


def sweep_rows(result: dict) -> list[dict]:
    return [{"N": result["N"], "bytes_per_rank": r["bytes_per_rank"], "median_ms": r["median_ms"],
             "p10_ms": r["p10_ms"], "p90_ms": r["p90_ms"], "algbw_GBps": r["algbw_GBps"],
             "busbw_GBps": r["busbw_GBps"]} for r in result.get("sweep", [])]


def overhead_rows(result: dict) -> list[dict]:
    """Harness overhead: balanced replay dispatch vs raw all_to_all_single of the same bytes."""
    ov = result.get("overhead", [])
    if not ov:
        return []
    pct = [o["overhead_pct"] for o in ov]
    return [{"N": result["N"], "cases": len(ov), "MB_per_rank": _mean(ov, ("per_rank_replay",)) / 1e6,
             "replay_ms": _mean(ov, ("replay_ms",)), "raw_ms": _mean(ov, ("raw_ms",)),
             "overhead_pct_median": float(np.median(pct)), "overhead_pct_max": float(np.max(pct))}]


def assemble(cfg, N: int, device: dict, prov: dict, cases: list[dict], overhead: list[dict],
             sweep: list[dict]) -> dict:
    """The result dict written as JSON."""
    from dodoco import __version__

    res = {"schema": SCHEMA, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "dodoco": __version__, "N": N, "backend": cfg.backend, "dispatcher": cfg.dispatcher,
           "hidden": cfg.hidden, "dtype": cfg.dtype, "row_bytes": cfg.row_bytes, "batch": cfg.batch,
           "timing": "CUDA events" if device.get("type") == "cuda" else "time.perf_counter (CPU dry run)",
           "device": device, "config": cfg.to_dict(), "source": prov, "note": cfg.note,
           "cases": cases, "overhead": overhead, "sweep": sweep}
    res["summary"] = summary_rows(res)
    return res


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def write_result(path, result: dict) -> None:
    from dodoco.store.atomic import write_json

    write_json(Path(path), _clean(result))


def load_results(paths) -> list[dict]:
    """Replay results from JSON files (a file may hold one result or a list under "replays")."""
    out = []
    for p in map(Path, paths):
        try:
            obj = json.loads(p.read_text())
        except FileNotFoundError:
            raise DodocoError(f"replay result {p} does not exist: run `dodoco replay ... --out {p}`") from None
        except json.JSONDecodeError as exc:
            raise DodocoError(f"{p} is not JSON ({exc.msg}): pass a file written by `dodoco replay`") from None
        items = obj.get("replays", [obj]) if isinstance(obj, dict) else obj
        for it in items:
            if it.get("schema") != SCHEMA:
                raise DodocoError(f"{p} holds schema {it.get('schema')!r}, expected {SCHEMA!r}")
            out.append(it)
    return out
