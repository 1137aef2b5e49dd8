"""Start a replay: checks before any process starts, torchrun when not under it, and each rank's main.

``dodoco replay`` outside torchrun checks what it can here (the trace holds N*B sequences, the
backend exists, the buffers fit), then runs ``python -m torch.distributed.run --standalone
--nproc-per-node N -m dodoco.replay <same arguments>``. Every rank writes a one-line error to
``$DODOCO_REPLAY_ERRDIR/rank<r>.txt`` when it fails, so the launcher can name the first failure in
one line after torchrun has stopped the other ranks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["ERRDIR_ENV", "launch", "preflight", "under_torchrun", "worker_main"]

ERRDIR_ENV = "DODOCO_REPLAY_ERRDIR"


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
    from dodoco.replay.runner import plan_memory

    if nproc < 1:
        raise DodocoError(f"--nproc {nproc}: need at least 1 rank")
    cases, _ = build_cases(cfg, nproc)
    need = plan_memory(cases, cfg, DEFAULT_L2)
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


def launch(cfg, nproc: int, extra_env: dict | None = None) -> int:
    """Run the replay under torchrun on this host; return 0, or raise DodocoError naming the failure.

    The settings travel as JSON (``python -m dodoco.replay --config FILE``); ``extra_env`` is added
    to the ranks' environment.
    """
    import json

    with tempfile.TemporaryDirectory(prefix="dodoco-replay-") as errdir:
        conf = Path(errdir, "config.json")
        conf.write_text(json.dumps(cfg.to_dict()))
        env = dict(os.environ, **(extra_env or {}), **{ERRDIR_ENV: errdir})
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "dodoco.replay", "--config", str(conf)]
        rc = subprocess.run(cmd, env=env).returncode
        if rc == 0:
            return 0
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


def worker_run(cfg) -> int:
    """One rank: run, and on rank 0 write the JSON and print the tables. Errors end the process:
    status 2 for a user error (printed by rank 0), 1 for a failure (printed by the failing rank)."""
    rank = int(os.environ.get("RANK", 0))
    try:
        from dodoco.replay.runner import run_worker

        result = run_worker(cfg)
        if result is not None:
            from dodoco.commands.replay import print_result
            from dodoco.replay.results import write_result

            if cfg.out:
                write_result(cfg.out, result)
            print_result(result, json_path=cfg.json)
        return 0
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
    """``python -m dodoco.replay --config FILE`` or ``python -m dodoco.replay RUNS [options]``."""
    import argparse
    import json

    if argv[:1] == ["--config"] and len(argv) == 2:
        from dodoco.replay.config import ReplayConfig

        try:
            cfg = ReplayConfig.from_dict(json.loads(Path(argv[1]).read_text()))
        except DodocoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return worker_run(cfg)
    from dodoco.commands.replay import add_arguments, config_from_args

    parser = argparse.ArgumentParser(prog="python -m dodoco.replay")
    add_arguments(parser)
    try:
        cfg = config_from_args(parser.parse_args(argv))
    except DodocoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return worker_run(cfg)
