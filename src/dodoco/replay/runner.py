"""One rank of a replay (under torchrun): every case through every dispatcher, then the raw sweep.

``run_worker(cfg)`` on each of N ranks: builds the cases for N = world size, finds which of the
named dispatchers can run here (the others are listed with the reason), checks memory before
allocating, starts the process group (with a timeout) and a watchdog, then for each case and each
dispatcher: prepares its buffers, checks one dispatch and combine against the routing, times
``iters`` iterations after ``warmup``, and on balanced cases times the same dispatcher in a bare loop
(the harness overhead). Rank 0 returns the result dict (``dodoco.replay/2``), the others None.
docs/replay.md describes the output.

Shape legend: N ranks, H hidden size, rows = per-expert copies.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dodoco.errors import DodocoError
from dodoco.compute.kernels import l2_bytes
from dodoco.replay import harness as hz
from dodoco.replay.config import ReplayConfig, build_cases
from dodoco.replay.dispatchers import get
from dodoco.replay.dispatchers.base import RankData, noop
from dodoco.replay.plan import sweep_sizes
from dodoco.replay.casecheck import case_name, case_sets, check_case

__all__ = ["FAIL_ENV", "Ctx", "active_dispatchers", "dist_env", "plan_memory", "run_many", "run_worker"]

#: Test hook: the rank named here raises before its first timed case (to test failure handling).
FAIL_ENV = "DODOCO_REPLAY_FAIL_RANK"


@dataclass
class Ctx:
    """What a dispatcher needs of the run: rank, N, device, process group, settings, dtype, L2 bytes."""

    rank: int
    N: int
    device: torch.device
    group: object
    cfg: ReplayConfig
    dtype: torch.dtype
    l2: int


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment."""
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))


def active_dispatchers(cfg: ReplayConfig, cases, N: int) -> tuple[list[str], dict]:
    """(names that run here on N ranks, {name: status}) for the named dispatchers; limits checked on
    every case.

    A dispatcher named explicitly whose package is missing is a DodocoError (what to install); one
    that only cannot run here (no CUDA on the gloo dry run, one rank for nvshmem), or was named
    through 'all', is listed as not measured with the reason.
    """
    from dodoco.replay.dispatchers import missing

    status, names = {}, []
    for name in cfg.dispatchers:
        why = missing(name)
        if why and name in cfg.explicit_dispatchers:
            raise DodocoError(why)
        cls = get(name)
        why = why or cls.probe(cfg.backend, N)
        if why is None:
            for c in cases:
                if c.kind in ("real", "mock"):  # the user's routing: beyond a limit is an error
                    cls.limits(c)
            names.append(name)
        status[name] = {
            "status": "not measured" if why else "measured",
            "reason": why or "",
            "summary": cls.summary,
            "version": _version(name),
        }
    if not names:
        raise DodocoError(
            "none of the dispatchers named can run here: " + "; ".join(f"{n}: {s['reason']}" for n, s in status.items())
        )
    return names, status


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    pkg = {"megatron": "megatron-core", "megatron-allgather": "megatron-core", "deepep": "deep_ep"}.get(name, "torch")
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"


def plan_memory(cases, cfg: ReplayConfig, names, rank: int, l2: int) -> int:
    """Bytes the busiest case allocates at once on ``rank`` for any one dispatcher (or the sweep)."""
    rb, need = cfg.row_bytes, 0
    for name in names:
        cls = get(name)
        for c in cases:
            s = c.splits
            sets = hz.n_buffer_sets((2 * int(s[rank].sum()) + int(s[:, rank].sum())) * rb, l2, cfg.buffers)
            need = max(need, cls.need_bytes(c, rank, sets, rb))
    if cfg.sweep:
        b = sweep_sizes(cfg.sweep_min, cfg.sweep_max)[-1]
        need = max(need, 2 * b * hz.n_buffer_sets(2 * b, l2, cfg.buffers))
    return need


def _device(cfg: ReplayConfig, local_rank: int):
    if cfg.backend == "nccl":
        if not (torch.cuda.is_available() and dist.is_nccl_available()):
            raise DodocoError(
                "the NCCL backend needs CUDA GPUs and a torch built with NCCL, not found here: "
                "use --backend gloo for a CPU dry run"
            )
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def replay_one(d, data: RankData, case, ctx: Ctx, link: dict) -> tuple[dict, dict | None]:
    """Check and time one case through one dispatcher -> (result row, overhead entry or None)."""
    from dodoco.replay.results import case_row

    cfg = ctx.cfg
    sets = case_sets(case, ctx)
    state = d.prepare(data, sets)
    check = check_case(d, data, state, case, ctx)
    t = hz.time_collective(
        lambda k, mark: d.step(state, k, mark), sets, cfg.warmup, cfg.iters, len(d.stages), ctx.device
    )
    row = case_row(d, case, t, check, cfg, sets, link["GBps"])
    ov = None
    if cfg.overhead and (case.kind == "balanced" or (case.kind == "grid" and case.rho == 1.0)):
        direct = hz.time_direct(lambda k: d.step(state, k, noop), sets, cfg.iters, ctx.device)
        harness = float(hz.stats(t.sum(axis=1))["median_ms"])
        ov = {
            "dispatcher": d.name,
            "N": case.N,
            "condition": case.condition,
            "step": case.step,
            "layer": case.layer,
            "per_rank_bytes": row["per_rank_bytes"],
            "harness_ms": harness,
            "direct_ms": direct,
            "overhead_pct": 100.0 * (harness / direct - 1.0) if direct > 0 else float("nan"),
        }
    d.release(state)
    return row, ov


def raw_alltoall(nbytes: int, cfg: ReplayConfig, N: int, device, l2: int) -> dict:
    """Plain all_to_all_single with uniform splits of ``nbytes`` per rank -> sweep row."""
    from dodoco.replay.results import bandwidth

    dt = hz.torch_dtype(cfg.dtype)
    esize = torch.empty((), dtype=dt).element_size()
    n = max(N, (nbytes // esize) // N * N)  # elements, a multiple of N
    sets = hz.n_buffer_sets(2 * n * esize, l2, cfg.buffers)
    bufs = [[torch.empty(n, dtype=dt, device=device), torch.empty(n, dtype=dt, device=device)] for _ in range(sets)]
    for b in bufs:
        b[0].view(torch.uint8).random_() if dt.itemsize == 1 else b[0].normal_()

    def step(k, mark):
        dist.all_to_all_single(bufs[k][1], bufs[k][0])
        mark(1)

    t = hz.time_collective(step, sets, cfg.warmup, cfg.iters, 1, device)
    st = hz.stats(t[:, 0])
    return {"bytes_per_rank": n * esize, **st, **bandwidth(n * esize, st["median_ms"], N), "buffer_sets": sets}


def _device_info(device) -> dict:
    info = {"torch": torch.__version__, "type": device.type}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(
            name=p.name,
            count=torch.cuda.device_count(),
            cuda=torch.version.cuda,
            nccl=".".join(map(str, torch.cuda.nccl.version())),
            l2_bytes=l2_bytes(device),
            memory_bytes=int(p.total_memory),
        )
    return info


def _init(cfg: ReplayConfig, device) -> None:
    kw = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(cfg.backend, timeout=datetime.timedelta(seconds=cfg.timeout_s), **kw)


def _fits(d, case, skipped: list) -> bool:
    """Whether dispatcher d can replay a synthetic case; if not, the reason goes to ``skipped``."""
    try:
        d.limits(case)
        return True
    except DodocoError as exc:
        skipped.append(f"{d.name} on {case_name(case)}: {exc}")
        return False


def _progress(ctx: Ctx, total: int):
    """A rich progress bar of the cases on rank 0 (stderr); a disabled one on the other ranks."""
    from dodoco.progress import progress_bar

    return progress_bar("replay cases", disable=ctx.rank != 0, transient=True)


def _ticker(ctx: Ctx, bar, task, total: int):
    """Advance the bar; where stderr is no terminal (a log, a pipe), rank 0 prints a line every tenth."""
    from rich.console import Console

    plain = ctx.rank == 0 and not Console(stderr=True).is_terminal
    done = [0]

    def tick():
        bar.advance(task)
        done[0] += 1
        if plain and (done[0] == total or done[0] * 10 // total > (done[0] - 1) * 10 // total):
            print(f"replay: {done[0]}/{total} cases", file=sys.stderr, flush=True)

    return tick


def _run_cases(cases, dispatchers, ctx: Ctx, dog, link: dict, skipped: list) -> tuple[list, list]:
    with _progress(ctx, len(cases)) as bar:
        task = bar.add_task("cases", total=len(cases))
        rows, overhead = _case_loop(cases, dispatchers, ctx, dog, link, skipped, _ticker(ctx, bar, task, len(cases)))
    return rows, overhead


def _case_loop(cases, dispatchers, ctx: Ctx, dog, link: dict, skipped: list, tick) -> tuple[list, list]:
    from dodoco.replay.layer_run import layer_one

    rows, overhead = [], []
    one = layer_one if ctx.cfg.layer else replay_one  # the whole-layer replay: the same cases and harness
    for i, case in enumerate(cases):
        if i == 0 and os.environ.get(FAIL_ENV) == str(ctx.rank):
            raise RuntimeError(f"injected failure ({FAIL_ENV}={ctx.rank})")
        data = RankData(case, ctx.rank, ctx.cfg.hidden, ctx.dtype, ctx.device)
        for d in (d for d in dispatchers if _fits(d, case, skipped)):
            row, ov = one(d, data, case, ctx, link)
            rows.append(row)
            if ov is not None:
                overhead.append(ov)
            dog.beat()
        del data
        tick()
    return rows, overhead


def _plan(cfg: ReplayConfig, N: int, rank: int, device, l2: int) -> dict:
    from dodoco.replay.layer_run import layer_dispatchers, layer_memory

    cases, prov = build_cases(cfg, N)
    names, status = active_dispatchers(cfg, cases, N)
    names = layer_dispatchers(cfg, names, status, device) if cfg.layer else names
    extra = layer_memory(cfg, cases, rank, l2) if cfg.layer else 0
    hz.check_memory(
        plan_memory(cases, cfg, names, rank, l2) + extra,
        device,
        f"replay buffers (H={cfg.hidden}, {cfg.dtype}, rotating sets past L2)",
    )
    return {"cfg": cfg, "cases": cases, "prov": prov, "names": names, "status": status}


def _link(cfg: ReplayConfig, N: int, device) -> dict:
    """The per-direction link bandwidth the floors use: given, measured (GPUs, N >= 2), or nominal."""
    if cfg.link_gbps is None and device.type == "cuda" and N >= 2 and torch.cuda.device_count() >= 2:
        return hz.measure_link(device)
    return cfg.link


def run_worker(cfg: ReplayConfig) -> dict | None:
    """Run the replay on this rank; rank 0 returns the result dict. See the module docstring."""
    return run_many([cfg])[0]


def run_many(cfgs: list[ReplayConfig]) -> list[dict | None]:
    """Several replays in one process group (one torchrun): on rank 0 their results, else Nones.

    Every replay's cases are built and checked first; the dispatchers are set up once for all of them
    (so symmetric memory is sized for the largest case of any), then the replays run in order.
    """
    rank, N, local = dist_env()
    device = _device(cfgs[0], local)
    l2 = l2_bytes(device)
    plans = [_plan(cfg, N, rank, device, l2) for cfg in cfgs]
    dog = hz.Watchdog(max(c.timeout_s for c in cfgs), rank).start()
    _init(cfgs[0], device)
    out = []
    try:
        link = _link(cfgs[0], N, device)
        made, everything = {}, [(c, p["cfg"]) for p in plans for c in p["cases"]]
        for p in plans:
            ctx = Ctx(rank, N, device, dist.group.WORLD, p["cfg"], hz.torch_dtype(p["cfg"].dtype), l2)
            dispatchers = []
            for n in p["names"]:
                d = get(n)(ctx)
                if n not in made:
                    d.setup(everything, max(c.buffers for c in cfgs))
                    made[n] = True
                dispatchers.append(d)
            dog.beat()
            rows, overhead = _run_cases(p["cases"], dispatchers, ctx, dog, link, p["prov"]["skipped"])
            sweep = [
                raw_alltoall(b, p["cfg"], N, device, l2)
                for b in (sweep_sizes(p["cfg"].sweep_min, p["cfg"].sweep_max) if p["cfg"].sweep else [])
            ]
            out.append((p, rows, overhead, sweep))
            dog.beat()
        dist.barrier()
        info = _device_info(device)
        dist.destroy_process_group()
    finally:
        dog.stop()
    if rank != 0:
        return [None] * len(cfgs)
    from dodoco.replay.layer_results import assemble_any

    return [assemble_any(p["cfg"], N, info, p["prov"], p["status"], rows, ov, sw, link) for p, rows, ov, sw in out]
