"""One rank of a replay (run under torchrun): every case, the overhead control and the raw sweep.

``run_worker(cfg)`` on each of N ranks: builds the cases for N = world size, checks memory before
allocating, starts the process group (with a timeout) and a watchdog, then for each case fills the
rows with their (source rank, row) codes, checks one dispatch and combine, and times dispatch and
combine over rotating buffer sets. Balanced cases are followed by a raw all_to_all_single of the
same bytes (the harness overhead); ``cfg.sweep`` adds the raw uniform sweep. Rank 0 returns the
result dict (``dodoco.replay/1``), others None. docs/dispatch.md describes the output.

Shape legend: N ranks, H hidden size, rows = per-expert copies.
"""

from __future__ import annotations

import datetime
import os

import numpy as np
import torch
import torch.distributed as dist

from dodoco.errors import DodocoError
from dodoco.replay import harness as hz
from dodoco.replay.config import ReplayConfig, build_cases
from dodoco.replay.plan import ReplayCase, case_bytes, sweep_sizes

__all__ = ["FAIL_ENV", "dist_env", "plan_memory", "run_worker", "stats"]

#: Test hook: the rank named here raises before its first timed case (to test failure handling).
FAIL_ENV = "DODOCO_REPLAY_FAIL_RANK"


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment."""
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))


def stats(t) -> dict:
    """median, p10, p90 of per-iteration times t[iters] (ms)."""
    p10, p50, p90 = np.percentile(np.asarray(t, dtype=np.float64), [10, 50, 90])
    return {"median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90)}


def bandwidth(per_rank_bytes: float, ms: float, N: int) -> dict:
    """nccl-tests convention: algbw = per-rank buffer bytes / time; busbw = algbw * (N-1)/N (GB/s)."""
    alg = per_rank_bytes / (ms * 1e-3) / 1e9 if ms > 0 else float("nan")
    return {"algbw_GBps": alg, "busbw_GBps": alg * (N - 1) / N}


def plan_memory(cases: list[ReplayCase], cfg: ReplayConfig, l2: int) -> int:
    """Bytes the busiest rank allocates at once: the largest case's buffer sets, or the sweep's."""
    rb, need = cfg.row_bytes, 0
    for c in cases:
        s = c.splits
        send, recv = int(s.sum(1).max()), int(s.sum(0).max())
        sets = hz.n_buffer_sets((2 * send + recv) * rb, l2, cfg.buffers)
        need = max(need, hz.need_memory(send, recv, rb, sets))
    if cfg.sweep:
        b = sweep_sizes(cfg.sweep_min, cfg.sweep_max)[-1]
        need = max(need, 2 * b * hz.n_buffer_sets(2 * b, l2, cfg.buffers))
    return need


def _device(cfg: ReplayConfig, local_rank: int):
    if cfg.backend == "nccl":
        if not (torch.cuda.is_available() and dist.is_nccl_available()):
            raise DodocoError("the NCCL backend needs CUDA GPUs and a torch built with NCCL, not found here: "
                              "use --backend gloo for a CPU dry run")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _buffers(rows: list[int], H: int, dtype, device, sets: int) -> list[list[torch.Tensor]]:
    return [[torch.empty((r, H), dtype=dtype, device=device) for r in rows] for _ in range(sets)]


def _check_once(bufs, ins, outs, splits, rank) -> int:
    send, recv, back = bufs
    dist.all_to_all_single(recv, send, outs, ins)
    bad = hz.check_rows(recv, rank, splits)
    dist.all_to_all_single(back, recv, ins, outs)
    same = (back.view(torch.uint8) == send.view(torch.uint8)).all(dim=1)  # bitwise: codes may be NaN as floats
    bad += int(send.shape[0] - same.sum().item())
    t = torch.tensor([bad], dtype=torch.int64, device=send.device)
    dist.all_reduce(t)
    return int(t.item())


def replay_case(case: ReplayCase, cfg: ReplayConfig, rank: int, device, l2: int) -> dict:
    """Check and time one case's dispatch and combine -> result row (times are max over ranks)."""
    s, H, N = case.splits, cfg.hidden, case.N
    ins, outs = [int(x) for x in s[rank]], [int(x) for x in s[:, rank]]
    rs, rr = sum(ins), sum(outs)
    sets = hz.n_buffer_sets((2 * rs + rr) * cfg.row_bytes, l2, cfg.buffers)
    bufs = _buffers([rs, rr, rs], H, hz.torch_dtype(cfg.dtype), device, sets)
    coded = all([hz.fill_rows(b[0], rank) for b in bufs])
    check = "skipped (rows are not whole 4-byte words)" if not coded else "off"
    if cfg.check and coded:
        bad = _check_once(bufs[0], ins, outs, s, rank)
        if bad:
            raise RuntimeError(f"replay check failed: {bad} rows arrived wrong in case {case.condition} "
                               f"step {case.step} layer {case.layer}")
        check = "ok"

    def step(k, mark):
        send, recv, back = bufs[k]
        dist.all_to_all_single(recv, send, outs, ins)
        mark(1)
        dist.all_to_all_single(back, recv, ins, outs)
        mark(2)

    t = hz.time_collective(step, sets, cfg.warmup, cfg.iters, 2, device)
    del bufs
    b = case_bytes(s, cfg.row_bytes)
    d, c = stats(t[:, 0]), stats(t[:, 1])
    return {"condition": case.condition, "kind": case.kind, "step": case.step, "layer": case.layer,
            **b, "buffer_sets": sets, "check": check, "dispatch": d, "combine": c,
            **bandwidth(b["per_rank"], d["median_ms"], N), "splits": s.tolist()}


def raw_alltoall(nbytes: int, cfg: ReplayConfig, N: int, device, l2: int) -> dict:
    """Plain all_to_all_single with uniform splits of ``nbytes`` per rank -> result row."""
    dt = hz.torch_dtype(cfg.dtype)
    esize = torch.empty((), dtype=dt).element_size()
    n = max(N, (nbytes // esize) // N * N)  # elements, a multiple of N
    sets = hz.n_buffer_sets(2 * n * esize, l2, cfg.buffers)
    bufs = [[torch.empty(n, dtype=dt, device=device), torch.empty(n, dtype=dt, device=device)]
            for _ in range(sets)]
    for b in bufs:
        b[0].view(torch.uint8).random_() if dt.itemsize == 1 else b[0].normal_()

    def step(k, mark):
        dist.all_to_all_single(bufs[k][1], bufs[k][0])
        mark(1)

    t = hz.time_collective(step, sets, cfg.warmup, cfg.iters, 1, device)
    per_rank = n * esize
    st = stats(t[:, 0])
    return {"bytes_per_rank": per_rank, **st, **bandwidth(per_rank, st["median_ms"], N), "buffer_sets": sets}


def _device_info(device) -> dict:
    info = {"torch": torch.__version__, "type": device.type}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(name=p.name, count=torch.cuda.device_count(), cuda=torch.version.cuda,
                    nccl=".".join(map(str, torch.cuda.nccl.version())), l2_bytes=hz.l2_bytes(device),
                    memory_bytes=int(p.total_memory))
    return info


def _init(cfg: ReplayConfig, device) -> None:
    kw = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(cfg.backend, timeout=datetime.timedelta(seconds=cfg.timeout_s), **kw)


def run_worker(cfg: ReplayConfig) -> dict | None:
    """Run the replay on this rank; rank 0 returns the result dict. See the module docstring."""
    rank, N, local = dist_env()
    device = _device(cfg, local)
    cases, prov = build_cases(cfg, N)
    dispatch_fn = replay_case
    if cfg.dispatcher == "deepep":
        from dodoco.replay.deepep import deepep_case, require_deepep

        require_deepep()
        cases, dispatch_fn = [c for c in cases if c.src is not None], deepep_case
    l2 = hz.l2_bytes(device)
    hz.check_memory(plan_memory(cases, cfg, l2), device,
                    f"replay buffers (H={cfg.hidden}, {cfg.dtype}, rotating sets past L2)")
    dog = hz.Watchdog(cfg.timeout_s, rank).start()
    _init(cfg, device)
    try:
        rows, overhead, sweep = [], [], []
        for i, case in enumerate(cases):
            if i == 0 and os.environ.get(FAIL_ENV) == str(rank):
                raise RuntimeError(f"injected failure ({FAIL_ENV}={rank})")
            rows.append(dispatch_fn(case, cfg, rank, device, l2))
            if case.kind == "balanced" and cfg.dispatcher == "alltoall":
                raw = raw_alltoall(int(round(rows[-1]["per_rank"])), cfg, N, device, l2)
                overhead.append(_overhead(rows[-1], raw))
            dog.beat()
        if cfg.sweep:
            for b in sweep_sizes(cfg.sweep_min, cfg.sweep_max):
                sweep.append(raw_alltoall(b, cfg, N, device, l2))
                dog.beat()
        dist.barrier()
        info = _device_info(device)
        dist.destroy_process_group()
    finally:
        dog.stop()
    if rank != 0:
        return None
    from dodoco.replay.results import assemble

    return assemble(cfg, N, info, prov, rows, overhead, sweep)


def _overhead(row: dict, raw: dict) -> dict:
    rep, ref = row["dispatch"]["median_ms"], raw["median_ms"]
    return {"step": row["step"], "layer": row["layer"], "per_rank_replay": row["per_rank"],
            "per_rank_raw": raw["bytes_per_rank"], "replay_ms": rep, "raw_ms": ref,
            "overhead_pct": 100.0 * (rep / ref - 1.0) if ref > 0 else float("nan")}
