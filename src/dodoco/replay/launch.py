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

__all__ = ["ERRDIR_ENV", "SAFE_ENV", "default_nproc", "launch", "preflight", "under_torchrun", "worker_main",
           "worker_run"]

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
    from dodoco.replay.harness import DEFAULT_L2, free_memory
    from dodoco.replay.runner import active_dispatchers, plan_memory

    if nproc < 1:
        raise DodocoError(f"--nproc {nproc}: need at least 1 rank")
    cases, _ = build_cases(cfg, nproc)
    names, _ = active_dispatchers(cfg, cases, nproc)
    need = max(plan_memory(cases, cfg, names, r, DEFAULT_L2) for r in range(nproc))
    what = f"replay buffers (H={cfg.hidden}, {cfg.dtype}, rotating sets past L2)"
    if cfg.backend == "gloo":
        free, desc = free_memory(torch.device("cpu"))
        if need * nproc > 0.9 * free:
            raise DodocoError(f"{what} need {need / 2**30:.2f} GiB per rank x {nproc} ranks but {desc}: "
                              "lower --hidden, --batch or --sweep-max, or use fewer ranks")
        return
    if not (torch.cuda.is_available() and dist.is_nccl_available()):
        raise DodocoError("the NCCL backend needs CUDA GPUs and a torch built with NCCL, not found here: "
                          "use --backend gloo for a CPU dry run")
    if torch.cuda.device_count() < nproc:
        raise DodocoError(f"--nproc {nproc} ranks but this host has {torch.cuda.device_count()} GPUs: lower "
                          "--nproc, or start torchrun yourself on several nodes")
    total = torch.cuda.get_device_properties(0).total_memory
    if need > 0.9 * total:
        raise DodocoError(f"{what} need {need / 2**30:.2f} GiB per rank but a GPU holds "
                          f"{total / 2**30:.1f} GiB: lower --hidden, --batch or --sweep-max")


def launch(cfg, nproc: int, extra_env: dict | None = None) -> dict:
    """Run the replay under torchrun on this host -> the result dict; DodocoError naming a failure.

    The settings travel as JSON (``python -m dodoco.replay --config FILE``); the result is written to
    ``cfg.out`` (a temporary file when None) by rank 0 and read back here. ``extra_env`` is added to
    the ranks' environment, after ``SAFE_ENV``.
    """
    from dodoco.replay.results import load_results

    with tempfile.TemporaryDirectory(prefix="dodoco-replay-") as errdir:
        out = cfg.out or str(Path(errdir, "result.json"))
        conf = Path(errdir, "config.json")
        conf.write_text(json.dumps(cfg.replace(out=out).to_dict()))
        env = dict(os.environ, **SAFE_ENV, **(extra_env or {}), **{ERRDIR_ENV: errdir})
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "dodoco.replay", "--config", str(conf)]
        rc = subprocess.run(cmd, env=env).returncode
        if rc == 0:
            return load_results([out])[0]
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
    """One rank: run; rank 0 writes ``cfg.out`` and returns the result (others None). Errors end the
    process: status 2 for a user error (printed by rank 0), 1 for a failure (printed by the failing rank)."""
    for k, v in SAFE_ENV.items():
        os.environ.setdefault(k, v)
    rank = int(os.environ.get("RANK", 0))
    try:
        from dodoco.replay.runner import run_worker

        result = run_worker(cfg)
        if result is not None and cfg.out:
            from dodoco.replay.results import write_result

            write_result(cfg.out, result)
        return result
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


def worker_main(argv: list[str]) -> int:
    """``python -m dodoco.replay --config FILE`` (JSON or TOML of ReplayConfig keys) on every rank."""
    from dodoco.replay.config import ReplayConfig

    if argv[:1] != ["--config"] or len(argv) != 2:
        print("usage: python -m dodoco.replay --config FILE (under torchrun; or `dodoco replay RUNS ...`)",
              file=sys.stderr)
        return 2
    try:
        path = Path(argv[1])
        cfg = (ReplayConfig.from_toml(path) if path.suffix == ".toml" else
               ReplayConfig.from_dict(json.loads(path.read_text()), source=f"config file {path}"))
    except (DodocoError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worker_run(cfg)
    return 0
