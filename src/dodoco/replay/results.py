"""The replay result (schema ``dodoco.replay/2``): one row per case and dispatcher, summaries, I/O.

``case_row`` builds a row (docs/replay.md lists every field; ``dodoco simulate`` fits on them).
Per dispatcher and condition, ``summary_rows`` averages over its cases (steps x layers): dispatch
and combine times are the mean of the per-case medians (and of the p10 / p90), bytes the mean
per-rank size, and ``vs_balanced`` the ratio of the mean dispatch time to the same dispatcher's
balanced control over cases with the same per-rank send rows (so the same bytes).
Results of schema ``dodoco.replay/1`` (the raw all_to_all_single replay of earlier versions) load
as rows of dispatcher ``nccl`` (``upgrade``).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError

__all__ = [
    "SCHEMA",
    "SUMMARY_COLUMNS",
    "assemble",
    "bandwidth",
    "by_case_group",
    "case_row",
    "dry_run",
    "load_results",
    "measured_on",
    "overhead_rows",
    "read_results",
    "row_splits",
    "summary_rows",
    "sweep_rows",
    "upgrade",
]

SCHEMA = "dodoco.replay/2"
#: The summary columns of a replay, as printed and as the report shows them (older files' names kept).
SUMMARY_COLUMNS = [
    "dispatcher",
    "condition",
    "kind",
    "N",
    "cases",
    "MB_per_rank",
    "per_rank_bytes",
    "recv_skew",
    "receiver_skew",
    "dispatch_ms",
    "dispatch_p10",
    "dispatch_p90",
    "combine_ms",
    "busbw_GBps",
    "floor_ms",
    "vs_floor",
    "vs_balanced",
    "check",
    "measured_on",
]
OLD_SCHEMA = "dodoco.replay/1"


def bandwidth(per_rank_bytes: float, ms: float, N: int) -> dict:
    """nccl-tests convention: algbw = per-rank buffer bytes / time; busbw = algbw * (N-1)/N (GB/s)."""
    alg = per_rank_bytes / (ms * 1e-3) / 1e9 if ms > 0 else float("nan")
    return {"algbw_GBps": alg, "busbw_GBps": alg * (N - 1) / N}


def dry_run(result: dict) -> bool:
    """Whether a replay result is a CPU dry run (gloo, or no GPU recorded): its times are no GPU measurement."""
    dev = result.get("device") or {}
    return result.get("backend") == "gloo" or dev.get("type", "cuda") != "cuda"


def measured_on(result: dict) -> str:
    """Where a replay's times come from, in words: ``measured: 4 x NVIDIA H200 (nccl)`` or the dry run."""
    if dry_run(result):
        return f"dry run: {result.get('backend', '?')} on CPU, not a GPU measurement"
    dev = result.get("device") or {}
    return f"measured: {dev.get('count', '?')} x {dev.get('name', 'GPU')} ({result.get('backend', 'nccl')})"


def row_splits(bytes_model: str, case) -> np.ndarray:
    """Rows a dispatcher moves from rank i to rank j for a case -> int64 [N, N].

    "copies": one row per expert copy (the case's splits); "dedup": one row per distinct (token,
    destination rank); "allgather": every token of rank i to every rank.
    """
    if bytes_model == "copies":
        return np.asarray(case.splits, dtype=np.int64)
    if bytes_model == "dedup":
        from dodoco.replay.routing import dedup_splits

        return dedup_splits(case.topk, case.slots)
    if bytes_model == "allgather":
        return np.repeat(np.asarray(case.tokens, dtype=np.int64)[:, None], case.N, axis=1)
    raise ValueError(f"unknown bytes model {bytes_model!r}")


def case_row(d, case, t, check: str, cfg, sets: int, link_gbps: float) -> dict:
    """One result row: dispatcher d on a case; t[iters, stages] ms (max over ranks per iteration);
    link_gbps: per-direction link bandwidth of the floor."""
    from dodoco.replay.harness import stats
    from dodoco.replay.plan import case_bytes, floor_ms

    s = row_splits(d.bytes, case)
    b = case_bytes(s, cfg.row_bytes)
    disp, comb = stats(t[:, : d.n_dispatch].sum(axis=1)), stats(t[:, d.n_dispatch :].sum(axis=1))
    floor = floor_ms(b, link_gbps) if cfg.backend == "nccl" else None  # a CPU dry run has no link floor
    return {
        "dispatcher": d.name,
        "N": case.N,
        "kind": case.kind,
        "pattern": case.pattern,
        "rho": case.rho,
        "model": case.model,
        "condition": case.condition,
        "step": case.step,
        "layer": case.layer,
        "E": case.E,
        "K": case.K,
        "tokens": [int(x) for x in case.tokens],
        "topk_source": case.topk_source,
        "row_bytes": cfg.row_bytes,
        "bytes": d.bytes,
        "splits": s.tolist(),
        **b,
        "dispatch": disp,
        "combine": comb,
        "stages": {n: float(np.median(t[:, k])) for k, n in enumerate(d.stages)},
        "floor_ms": floor,
        "vs_floor": disp["median_ms"] / floor if floor else None,
        **bandwidth(b["per_rank_bytes"], disp["median_ms"], case.N),
        "check": check,
        "iters": cfg.iters,
        "buffer_sets": sets,
    }


def _key(row: dict) -> tuple:
    return (row["dispatcher"],) + tuple(int(x) for x in np.asarray(row["splits"]).sum(1))


def _mean(rows: list[dict], *path: str) -> float:
    vals = []
    for r in rows:
        v = r
        for p in path:
            v = v[p]
        vals.append(float(v) if v is not None else float("nan"))
    return float(np.nanmean(vals)) if not np.isnan(vals).all() else float("nan")


def by_case_group(rows: list[dict], stage: str) -> list[tuple]:
    """[(dispatcher, condition, its rows, balanced references)]: every dispatcher and condition in order
    of appearance, with the mean ``stage`` median of the balanced control sending the same rows as
    each of its cases (the one reference of ``vs_balanced``, dispatch or whole layer alike)."""
    bal: dict = {}
    for r in rows:
        if r["kind"] == "balanced":
            bal.setdefault(_key(r), []).append(r[stage]["median_ms"])
    out = []
    for disp, cond in dict.fromkeys((r["dispatcher"], r["condition"]) for r in rows):
        rs = [r for r in rows if r["dispatcher"] == disp and r["condition"] == cond]
        out.append((disp, cond, rs, [float(np.mean(bal[_key(r)])) for r in rs if _key(r) in bal]))
    return out


def summary_rows(result: dict) -> list[dict]:
    """One row per dispatcher and condition: means over its cases (see the module docstring)."""
    N, out = result["N"], []
    for disp, cond, rs, ref in by_case_group(result["rows"], "dispatch"):
        d, per_rank = _mean(rs, "dispatch", "median_ms"), _mean(rs, "per_rank_bytes")
        alg = per_rank / (d * 1e-3) / 1e9 if d > 0 else float("nan")
        ok = sum(r.get("check") == "ok" for r in rs)
        check = "ok" if ok == len(rs) else ("off" if ok == 0 else f"{ok} of {len(rs)} ok")
        out.append(
            {
                "dispatcher": disp,
                "condition": cond,
                "kind": rs[0]["kind"],
                "N": N,
                "cases": len(rs),
                "MB_per_rank": per_rank / 1e6,
                "recv_skew": _mean(rs, "receiver_skew"),
                "dispatch_ms": d,
                "dispatch_p10": _mean(rs, "dispatch", "p10_ms"),
                "dispatch_p90": _mean(rs, "dispatch", "p90_ms"),
                "combine_ms": _mean(rs, "combine", "median_ms"),
                "floor_ms": _mean(rs, "floor_ms"),
                "vs_floor": _mean(rs, "vs_floor"),
                "busbw_GBps": alg * (N - 1) / N,
                "vs_balanced": d / float(np.mean(ref)) if ref else float("nan"),
                "check": check,
                "measured_on": measured_on(result),
            }
        )
    return out


def sweep_rows(result: dict) -> list[dict]:
    return [
        {
            "N": result["N"],
            "bytes_per_rank": r["bytes_per_rank"],
            "median_ms": r["median_ms"],
            "p10_ms": r["p10_ms"],
            "p90_ms": r["p90_ms"],
            "algbw_GBps": r["algbw_GBps"],
            "busbw_GBps": r["busbw_GBps"],
        }
        for r in result.get("sweep", [])
    ]


def overhead_rows(result: dict) -> list[dict]:
    """Harness overhead per dispatcher: harness median vs the bare loop, on balanced cases."""
    out = []
    for disp in dict.fromkeys(o["dispatcher"] for o in result.get("overhead", [])):
        ov = [o for o in result["overhead"] if o["dispatcher"] == disp]
        pct = [o["overhead_pct"] for o in ov]
        out.append(
            {
                "dispatcher": disp,
                "N": result["N"],
                "cases": len(ov),
                "MB_per_rank": _mean(ov, "per_rank_bytes") / 1e6,
                "harness_ms": _mean(ov, "harness_ms"),
                "direct_ms": _mean(ov, "direct_ms"),
                "overhead_pct_median": float(np.median(pct)),
                "overhead_pct_max": float(np.max(pct)),
            }
        )
    return out


#: Harness overhead (median, %) above which the replay's times carry a caveat.
OVERHEAD_CAVEAT_PCT = 10.0


def caveats(result: dict) -> list[str]:
    """What qualifies a replay's times, generated from the result: a dry run, a large harness overhead,
    the floor's link bandwidth and where it comes from."""
    out = []
    if dry_run(result):
        out.append(
            f"CPU dry run ({result.get('backend')}): CPU wall-clock times of a pipeline check, no GPU "
            "measurement; no link floor applies (rerun on GPUs without --backend gloo)"
        )
    pct: dict = {}
    for o in result.get("overhead") or []:  # /1 files hold nccl's only, without a dispatcher field
        pct.setdefault(o.get("dispatcher", "nccl"), []).append(float(o["overhead_pct"]))
    for disp, p in pct.items():
        if abs(float(np.median(p))) > OVERHEAD_CAVEAT_PCT:
            out.append(
                f"{disp}: the harness and the direct call differ by {float(np.median(p)):+.1f}% (median over "
                f"{len(p)} balanced cases, up to {max(p, key=abs):+.1f}%): its times carry that much "
                "harness overhead or noise"
            )
    if not dry_run(result) and result.get("link"):
        out.append(
            f"floor: busiest rank's off-diagonal bytes / {result['link']['GBps']:g} GB/s per direction "
            f"({result['link']['source']})"
        )
    return out


def printed_tables(result: dict) -> dict:
    """What ``dodoco replay`` prints, as one document: title, summary, not_measured, overhead, sweep, notes."""
    dev = result.get("device") or {}
    title = (
        f"dispatch replay, N={result['N']}, H={result['hidden']} {result['dtype']}, "
        f"{dev.get('name', result['backend'])} ({result['timing']})"
    )
    if dry_run(result):
        title = "CPU DRY RUN, not a GPU measurement: " + title
    return {
        "title": title,
        "summary": result["summary"],
        "not_measured": [
            {"dispatcher": k, "reason": v["reason"]}
            for k, v in result["dispatchers"].items()
            if v["status"] != "measured"
        ],
        "overhead": overhead_rows(result),
        "sweep": sweep_rows(result),
        "notes": caveats(result),
    }


def assemble(
    cfg,
    N: int,
    device: dict,
    prov: dict,
    dispatchers: dict,
    rows: list[dict],
    overhead: list[dict],
    sweep: list[dict],
    link: dict,
) -> dict:
    """The result dict written as JSON."""
    from dodoco.provenance import VERSION

    res = {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "dodoco": VERSION,
        "N": N,
        "backend": cfg.backend,
        "hidden": cfg.hidden,
        "dtype": cfg.dtype,
        "row_bytes": cfg.row_bytes,
        "batch": cfg.batch,
        "timing": "CUDA events" if device.get("type") == "cuda" else "time.perf_counter (CPU dry run)",
        "device": device,
        "link": link,
        "config": cfg.to_dict(),
        "source": prov,
        "note": cfg.note,
        "dispatchers": dispatchers,
        "rows": rows,
        "overhead": overhead,
        "sweep": sweep,
    }
    res["summary"] = summary_rows(res)
    return res


def write_result(path, result: dict) -> None:
    from dodoco.store.atomic import json_safe, write_json

    write_json(Path(path), json_safe(result))


def upgrade(result: dict) -> dict:
    """A ``dodoco.replay/1`` result as ``/2``: its cases become rows of dispatcher ``nccl``, bytes and
    the floor (nominal link) recomputed from their splits."""
    from dodoco.defaults import NOMINAL_LINK_GBPS
    from dodoco.replay.plan import case_bytes, floor_ms

    if result.get("schema") == SCHEMA:
        return result
    rows = []
    for c in result.get("cases", []):
        b = case_bytes(c["splits"], result["row_bytes"])
        floor = floor_ms(b, NOMINAL_LINK_GBPS)
        rows.append(
            dict(
                c,
                **b,
                dispatcher="nccl",
                N=result["N"],
                row_bytes=result["row_bytes"],
                bytes="copies",
                floor_ms=floor,
                vs_floor=c["dispatch"]["median_ms"] / floor if floor > 0 else float("nan"),
                pattern={"real": "routing", "mock": "routing", "balanced": "uniform"}.get(c["kind"], "hot-receiver"),
            )
        )
    out = dict(
        result,
        schema=SCHEMA,
        rows=rows,
        upgraded_from=OLD_SCHEMA,
        link={"GBps": NOMINAL_LINK_GBPS, "source": "nominal: NVLink4 per direction (H100/H200)"},
        dispatchers={"nccl": {"status": "measured", "reason": "", "summary": "all_to_all_single (replay/1)"}},
    )
    return out  # its "summary" and "cases" stay as /1 wrote them (readers of /1 files keep working)


def read_results(path) -> tuple[list[dict], dict, str]:
    """The one reader of replay result files -> (results as /2 (``upgrade``), the file's top-level
    fields, sha256 of the file). A file holds one result, a list of them, or a combined bench file
    (results under "replays" beside top-level fields: machine, device, notes). One-line errors."""
    from dodoco.jsonfile import read_json

    p = Path(path)
    fix = "pass a file written by `dodoco replay -o` or bench_dispatch.py"
    obj, digest = read_json(p, "replay result", fix)
    top = obj if isinstance(obj, dict) and isinstance(obj.get("replays"), list) else {}
    items = top["replays"] if top else obj if isinstance(obj, list) else [obj]
    for it in items:
        if not isinstance(it, dict) or it.get("schema") not in (SCHEMA, OLD_SCHEMA):
            schema = it.get("schema") if isinstance(it, dict) else type(it).__name__
            raise DodocoError(f"{p} holds schema {schema!r}, not a replay result ({SCHEMA!r}): {fix}")
    return [upgrade(it) for it in items], top, digest


def load_results(paths) -> list[dict]:
    """Replay results of every file (``read_results``), as /2, in file order."""
    return [res for p in paths for res in read_results(p)[0]]
