"""Start a replay: checks before any process starts, torchrun when not under it, and each rank's main.

``launch(cfg, nproc)`` checks what it can here (``preflight``: the cases, the dispatchers, the
buffers), then runs ``python -m torch.distributed.run --standalone --nproc-per-node N -m
dodoco.replay --config FILE`` and returns the result rank 0 wrote. Every rank writes a one-line
error to ``$DODOCO_REPLAY_ERRDIR/rank<r>.txt`` when it fails, so the launcher names the first
failure in one line after torchrun has stopped the other ranks. Printing is the command's job
(``dodoco.commands.replay``): nothing here imports the command layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = [
    "ERRDIR_ENV",
    "SAFE_ENV",
    "default_nproc",
    "launch",
    "launch_many",
    "preflight",
    "under_torchrun",
    "worker_main",
    "worker_run",
    "worker_run_many",
]

ERRDIR_ENV = "DODOCO_REPLAY_ERRDIR"
#: Set in every rank: NVLink multicast stays off in NCCL, PyTorch symmetric memory and NVSHMEM.
SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def under_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"))


def default_nproc(backend: str) -> int:
    if backend == "nccl":
        import torch

        return max(1, torch.cuda.device_count())
    return 2


def preflight(cfg, nproc: int) -> None:
    """Raise DodocoError for what is wrong before any rank starts (single-node launch of nproc ranks)."""
    import torch
    import torch.distributed as dist

    from dodoco.replay.config import build_cases
    from dodoco.compute.kernels import DEFAULT_L2
    from dodoco.replay.harness import free_memory
    from dodoco.replay.runner import active_dispatchers, plan_memory

    if nproc < 1:
        raise DodocoError(f"--nproc {nproc}: need at least 1 rank")
    cases, _ = build_cases(cfg, nproc)
    names, status = active_dispatchers(cfg, cases, nproc)
    need = max(plan_memory(cases, cfg, names, r, DEFAULT_L2) for r in range(nproc))
    if cfg.layer:  # the whole-layer replay: its dispatchers, its experts' shape and weights
        from dodoco.replay.layer_run import layer_dispatchers, layer_memory

        layer_dispatchers(cfg, names, status, torch.device("cpu"))
        need += max(layer_memory(cfg, cases, r, DEFAULT_L2) for r in range(nproc))
    what = f"replay buffers (H={cfg.hidden}, {cfg.dtype}, rotating sets past L2)"
    if cfg.backend == "gloo":
        free, desc = free_memory(torch.device("cpu"))
        if need * nproc > 0.9 * free:
            raise DodocoError(
                f"{what} need {need / 2**30:.2f} GiB per rank x {nproc} ranks but {desc}: "
                "lower --hidden, --batch or --sweep-max, or use fewer ranks"
            )
        return
    if not (torch.cuda.is_available() and dist.is_nccl_available()):
        raise DodocoError(
            "the NCCL backend needs CUDA GPUs and a torch built with NCCL, not found here: "
            "use --backend gloo for a CPU dry run"
        )
    if torch.cuda.device_count() < nproc:
        raise DodocoError(
            f"--nproc {nproc} ranks but this host has {torch.cuda.device_count()} GPUs: lower "
            "--nproc, or start torchrun yourself on several nodes"
        )
    total = torch.cuda.get_device_properties(0).total_memory
    if need > 0.9 * total:
        raise DodocoError(
            f"{what} need {need / 2**30:.2f} GiB per rank but a GPU holds "
            f"{total / 2**30:.1f} GiB: lower --hidden, --batch or --sweep-max"
        )


def launch(cfg, nproc: int, extra_env: dict | None = None) -> dict:
    """Run one replay under torchrun on this host -> its result dict (see ``launch_many``)."""
    return launch_many([cfg], nproc, extra_env)[0]


def launch_many(cfgs, nproc: int, extra_env: dict | None = None) -> list[dict]:
    """Run replays in one torchrun (one process group) on this host -> their results; DodocoError
    naming the first failure.

    The settings travel as JSON (``python -m dodoco.replay --config FILE ...``); each result is written
    to its ``cfg.out`` (a temporary file when None) by rank 0 and read back here. ``extra_env`` is added
    to the ranks' environment, after ``SAFE_ENV``.
    """
    from dodoco.replay.results import load_results

    with tempfile.TemporaryDirectory(prefix="dodoco-replay-") as errdir:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(nproc),
            "-m",
            "dodoco.replay",
        ]
        outs = []
        for i, cfg in enumerate(cfgs):
            outs.append(cfg.out or str(Path(errdir, f"result-{i}.json")))
            conf = Path(errdir, f"config-{i}.json")
            conf.write_text(json.dumps(cfg.replace(out=outs[-1]).to_dict()))
            cmd += ["--config", str(conf)]
        env = {**os.environ, **SAFE_ENV, **(extra_env or {}), ERRDIR_ENV: errdir}
        if nproc > 1:  # what torchrun would set, without its OMP_NUM_THREADS banner in the user's output
            env.setdefault("OMP_NUM_THREADS", "1")
        rc = subprocess.run(cmd, env=env).returncode
        if rc == 0:
            return [load_results([o])[0] for o in outs]
        errs = sorted(Path(errdir).glob("rank*.txt"), key=lambda p: p.stat().st_mtime_ns)
        first = errs[0].read_text().strip() if errs else f"torchrun exited with status {rc}"
        raise DodocoError(f"replay failed: {first}")


def _report_error(rank: int, message: str) -> None:
    d = os.environ.get(ERRDIR_ENV)
    if d:
        try:
            Path(d, f"rank{rank}.txt").write_text(message + "\n")
        except OSError:
            pass


def worker_run(cfg) -> dict | None:
    """One rank of one replay: rank 0 writes ``cfg.out`` and returns the result (others None)."""
    return worker_run_many([cfg])[0]


def worker_run_many(cfgs) -> list:
    """One rank of several replays in one process group; rank 0 writes each ``cfg.out`` and returns the
    results (others Nones). Errors end the process: status 2 for a user error (printed by rank 0), 1 for
    a failure (printed by the failing rank)."""
    for k, v in SAFE_ENV.items():
        os.environ.setdefault(k, v)
    rank = int(os.environ.get("RANK", 0))
    try:
        from dodoco.replay.results import write_result
        from dodoco.replay.runner import run_many

        results = run_many(list(cfgs))
        for cfg, result in zip(cfgs, results):
            if result is not None and cfg.out:
                write_result(cfg.out, result)
        return results
    except DodocoError as exc:
        _report_error(rank, str(exc))
        if rank == 0:
            print(f"error: {exc}", file=sys.stderr, flush=True)
        os._exit(2)
    except Exception as exc:  # a failing rank: say which and why, then leave at once (no hang)
        msg = f"rank {rank} failed: {type(exc).__name__}: {exc}"
        _report_error(rank, msg)
        print(f"replay: {msg}; stopping (torchrun stops the other ranks)", file=sys.stderr, flush=True)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)


def _read_config(path: Path):
    from dodoco.replay.config import ReplayConfig

    if path.suffix == ".toml":
        return ReplayConfig.from_toml(path)
    return ReplayConfig.from_dict(json.loads(path.read_text()), source=f"config file {path}")


def worker_main(argv: list[str]) -> int:
    """``python -m dodoco.replay --config FILE [--config FILE ...]`` (JSON or TOML of ReplayConfig keys)
    on every rank under torchrun: the replays run one after the other in one process group."""
    files = argv[1::2]
    if not argv or len(argv) % 2 or any(a != "--config" for a in argv[0::2]):
        print(
            "usage: python -m dodoco.replay --config FILE [--config FILE ...] (under torchrun; or "
            "`dodoco replay RUNS ...`)",
            file=sys.stderr,
        )
        return 2
    try:
        cfgs = [_read_config(Path(f)) for f in files]
    except (DodocoError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worker_run_many(cfgs)
    return 0
