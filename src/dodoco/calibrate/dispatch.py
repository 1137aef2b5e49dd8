"""The dispatch part of ``dodoco calibrate``: the calibration grid through every dispatcher that runs here.

Per EP degree N and dispatcher, one replay of the grid (``ReplayConfig(grid_sizes=..., grid_skews=...,
grid_patterns=...)``, the cases ``replay.config.grid_cases`` builds) in its own torchrun
(``replay.launch.launch``: the same preflight, harness, checks and safe environment as ``dodoco
replay``), so that each finished dispatcher is a saved part and a crash of one leaves the others. A
dispatcher that cannot run here is one line with the reason (the registry's ``missing`` and the
class's ``probe``); one that moves other bytes than per-expert copies (``megatron-allgather``,
``deepep``) is not calibrated, since ``dodoco simulate`` prices per-expert-copy traffic.

Shape legend: N EP ranks, E routed experts, K experts per token, H hidden size.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["dispatch_status", "grid_replay", "rank_env", "run_dispatch_part"]


def dispatch_status(cfg, N: int) -> tuple[list[str], dict]:
    """(dispatchers to calibrate at N ranks, {name: why not} for the others)."""
    from dodoco.replay.dispatchers import expand_names, get, missing

    run, skip = [], {}
    for name in expand_names(cfg.dispatcher):
        cls = get(name)
        why = missing(name) or cls.probe(cfg.backend, N)
        if why is None and cls.bytes != "copies":
            why = (
                f"moves {cls.bytes} rows, and the dispatch model prices per-expert copies (simulate's traffic): "
                "not calibrated (dodoco replay measures it)"
            )
        if why is None:
            run.append(name)
        else:
            skip[name] = why
    return run, skip


def grid_replay(cfg, N: int, name: str, out=None):
    """The ReplayConfig of the calibration grid through one dispatcher at N ranks."""
    from dodoco.replay.config import ReplayConfig

    unit = cfg.dry("unit")
    return ReplayConfig(
        grid_sizes=tuple(int(mb) << unit for mb in cfg.sizes_mb),
        grid_skews=tuple(cfg.skews),
        grid_patterns=tuple(cfg.patterns),
        grid_experts=max(N, cfg.experts // N * N),
        grid_topk=cfg.topk,
        hidden=cfg.dry("hidden"),
        backend=cfg.backend,
        dispatcher=(name,),
        iters=cfg.dry("iters"),
        warmup=cfg.dry("warmup"),
        overhead=False,
        timeout_s=cfg.timeout_s,
        out=out,
        note=f"dodoco calibrate: grid of {name} at N={N}" + (" (DRY RUN, gloo on CPU)" if cfg.dry_run else ""),
    )


def rank_env() -> dict:
    """Every rank finds this dodoco, installed or not (its source folder first on PYTHONPATH)."""
    import dodoco

    src = str(Path(dodoco.__file__).resolve().parent.parent)
    return {
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PYTHONUNBUFFERED": "1",
    }


def run_dispatch_part(cfg, N: int, name: str, machine: str) -> dict:
    """Replay the grid through ``name`` on N ranks -> the part: {"machine", "replays": [result]}, or
    {"failed": one line} when the replay failed (the other parts go on)."""
    from dodoco.errors import DodocoError
    from dodoco.replay.launch import launch, preflight

    rcfg = grid_replay(cfg, N, name)
    try:
        preflight(rcfg, N)
        result = launch(rcfg, N, extra_env=rank_env())
    except DodocoError as exc:
        return {"machine": machine, "dispatcher": name, "N": N, "failed": str(exc)}
    return {"machine": machine, "dispatcher": name, "N": N, "replays": [result]}
