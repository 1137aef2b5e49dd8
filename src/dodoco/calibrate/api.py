"""``dodoco calibrate`` as a function: this machine's dispatch and expert-compute calibration, in one file.

``calibrate(CalibrateConfig)`` on the GPUs visible here (N of them):

1. the host's identity (``dodoco.host``: GPU name and count, interconnect from ``nvidia-smi topo -m``,
   driver, CUDA, NCCL, torch, dodoco version and commit, date);
2. the dispatch calibration grid at each EP degree (default N) through every dispatcher that runs
   here, one torchrun per dispatcher (``calibrate.dispatch``), then the dispatch model fitted and its
   form chosen per (N, dispatcher, phase) by held-out error (``simulate.fit.calibrate``);
3. the expert-compute grid at the paper's shapes on GPU 0, fitted per kernel (``calibrate.compute``);
4. one calibration file (``dodoco.calibration/2``: fits, compute models, host, the settings, each
   dispatcher's status, each part's seconds) that ``dodoco simulate --calibration FILE`` reads, and
   beside it each kernel's compute model (``dodoco.compute/1``) for ``--compute-calibration``.

Finished parts are kept under the work folder and skipped on a rerun (``calibrate.parts``). On one
GPU only the compute part runs (nothing crosses a link). A gloo or CPU run is refused as a calibration;
``--dry-run`` runs the whole path on gloo at toy sizes and writes a file marked DRY RUN, which
``dodoco simulate`` refuses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from dodoco.calibrate.config import CalibrateConfig
from dodoco.errors import DodocoError

__all__ = ["CalibrateConfig", "CalibrateResult", "calibrate"]


@dataclass
class CalibrateResult:
    """The file written, its Calibration, the compute files beside it, and what to print."""

    path: Path
    calibration: object
    compute_files: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    seconds: float = 0.0


def _host(cfg: CalibrateConfig) -> tuple[int, dict]:
    import torch

    from dodoco.host import host_identity

    if cfg.dry_run:
        N = cfg.nproc or 2
        return N, {**host_identity(cfg.machine or f"dry-run-cpu-x{N}"), "dry_run": True}
    if not torch.cuda.is_available() or not torch.cuda.device_count():
        raise DodocoError(
            "no CUDA GPU is visible here: dodoco calibrate measures this machine's GPUs; --dry-run "
            "checks the path on CPU (its file is marked DRY RUN)"
        )
    count = torch.cuda.device_count()
    N = cfg.nproc or count
    if N > count:
        raise DodocoError(f"--nproc {N} but this host has {count} GPUs: lower --nproc")
    return N, host_identity(cfg.machine)


def _settings(cfg: CalibrateConfig, ranks) -> dict:
    keys = ("dispatcher", "sizes_mb", "skews", "patterns", "experts", "topk", "compute", "kernel", "shapes", "device")
    return {
        "ranks": list(ranks),
        "dry_run": cfg.dry_run,
        "backend": cfg.backend,
        "hidden": cfg.dry("hidden"),
        "iters": cfg.dry("iters"),
        "warmup": cfg.dry("warmup"),
        "size_unit": "128 KiB" if cfg.dry_run else "MiB",
        "compute_grid": {
            "max_tokens": cfg.dry("max_tokens"),
            "random_cases": cfg.dry("random_cases"),
            "shape_scale": cfg.dry("shape_scale"),
        },
        **{k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(cfg, k)) for k in keys)},
    }


def _plan(cfg: CalibrateConfig, ranks, machine: str, status: dict) -> list[tuple]:
    """[(part name, label, function)] in the order they run: dispatch grids, then the compute grid."""
    from dodoco.calibrate import compute as cp
    from dodoco.calibrate.dispatch import dispatch_status, run_dispatch_part

    plan = []
    for n in ranks:
        run, skip = dispatch_status(cfg, n)
        status.update({f"N={n} {k}": {"status": "not calibrated", "reason": v} for k, v in skip.items()})
        plan += [
            (f"dispatch-N{n}-{d}", f"dispatch grid, {d}, N={n}", lambda n=n, d=d: run_dispatch_part(cfg, n, d, machine))
            for d in run
        ]
    if cfg.compute:
        plan.append(("compute-device", "expert compute: device ceilings and kernel check", lambda: cp.device_part(cfg)))
        n = len(cp.grid_of(cfg))
        plan += [
            (
                f"compute-{s}",
                f"expert compute grid, {s} ({cp.compute_shape(cfg, s).label()}, {n} cases), {', '.join(cfg.kernel)}",
                lambda s=s: _with_bar(lambda bar: cp.measure_part(cfg, s, bar), s, n),
            )
            for s in cfg.shapes
        ]
    return plan


def _with_bar(fn, what: str, total: int):
    """fn(progress) under a rich progress bar of its ``total`` cases (stderr)."""
    from dodoco.progress import progress_bar

    with progress_bar(f"compute {what}", transient=True) as bar:
        task = bar.add_task("", total=total)
        return fn(lambda n: bar.advance(task, n))


def _run_parts(plan, parts, echo) -> dict:
    seconds = {}
    for i, (name, label, fn) in enumerate(plan, 1):
        head = f"[{i}/{len(plan)}] {label}"
        if parts.done(name):
            seconds[name] = parts.load(name).get("seconds", 0.0)
            echo(f"{head}: finished earlier, kept ({parts.path(name)})")
            continue
        echo(f"{head} ...")
        t = time.time()
        obj = fn()
        obj["seconds"] = seconds[name] = time.time() - t
        parts.save(name, obj)
        echo(
            f"{head}: {'FAILED: ' + obj['failed'] if 'failed' in obj else 'done'} in {seconds[name]:.0f} s"
            + (f" (remove {parts.path(name)} to retry it)" if "failed" in obj else "")
        )
    return seconds


def _dispatch_fits(cfg, parts, plan, status: dict) -> tuple[tuple, tuple, list[str]]:
    from dodoco.simulate.fit import calibrate as fit
    from dodoco.simulate.samples import load_groups

    ok, notes = [], []
    for name, _, _ in plan:
        if not name.startswith("dispatch-"):
            continue
        part = parts.load(name)
        key = f"N={part['N']} {part['dispatcher']}"
        status[key] = (
            {"status": "failed", "reason": part["failed"]}
            if "failed" in part
            else {"status": "calibrated", "reason": ""}
        )
        if "failed" not in part:
            ok.append(parts.path(name))
    if not ok:
        return (), (), notes
    groups, sources = load_groups(ok, dry_run=cfg.dry_run)
    try:
        cal, records = fit(groups, sources)
    except DodocoError as exc:
        return (), tuple(s.to_dict() for s in sources), [f"dispatch not calibrated: {exc}"]
    notes += [
        f"not calibrated: N={r['N']} {r['dispatcher']} {r['phase']}: {r['skipped']}" for r in records if "skipped" in r
    ]
    return cal.fits, cal.sources, notes


def calibrate(cfg: CalibrateConfig, echo=print) -> CalibrateResult:
    """Calibrate this machine (module docstring) -> CalibrateResult; ``echo`` prints each part's progress."""
    from dodoco.calibrate.compute import fit_compute
    from dodoco.calibrate.parts import Parts
    from dodoco.host import describe
    from dodoco.simulate.calibration import Calibration

    t0 = time.time()
    N, host = _host(cfg)
    ranks = tuple(cfg.ranks or ((N,) if N >= 2 else ()))
    if any(n > N for n in ranks):
        raise DodocoError(f"--ranks {list(ranks)}: this run has {N} GPUs (ranks); lower --ranks or raise --nproc")
    parts = Parts(cfg.work or f"{cfg.out}.parts", host, _settings(cfg, ranks))
    parts.open()
    echo(f"calibrating {describe(host)}" + (" -- DRY RUN on gloo (CPU): not a measurement" if cfg.dry_run else ""))
    if not ranks:
        echo("one GPU: no dispatch calibration (nothing crosses a link at N = 1); expert compute only")
    status: dict = {}
    plan = _plan(cfg, ranks, host["machine"], status)
    seconds = _run_parts(plan, parts, echo)
    fits, sources, notes = _dispatch_fits(cfg, parts, plan, status)
    compute, cnotes = ({}, [])
    if cfg.compute:
        shapes = [parts.load(f"compute-{s}") for s in cfg.shapes]
        compute, cnotes = fit_compute(shapes, parts.load("compute-device"), cfg.kernel, host)
    meta = {
        "settings": _settings(cfg, ranks),
        "dispatchers": status,
        "parts_s": seconds,
        "elapsed_s": time.time() - t0,
        "work": str(parts.folder),
    }
    cal = Calibration.new(
        fits,
        sources,
        notes + cnotes + (["DRY RUN: gloo on CPU at toy sizes; the path, not a measurement"] if cfg.dry_run else []),
        host=host,
        compute=compute,
        dry_run=cfg.dry_run,
        meta=meta,
    )
    return _write(cfg, cal, compute, t0)


def _write(cfg, cal, compute: dict, t0: float) -> CalibrateResult:
    from dodoco.store.atomic import json_safe, write_json

    out = Path(cfg.out)
    write_json(out, json_safe(cal.to_dict()))
    files = []
    for kernel, model in ({} if cfg.dry_run else compute).items():  # a dry run's models stay inside its marked file
        p = out.with_name(f"{out.stem}.compute-{kernel}.json")
        write_json(p, json_safe({**model, "host_identity": cal.host}))
        files.append(p)
    res = CalibrateResult(out, cal, files, seconds=time.time() - t0)
    res.lines = [f"wrote {out} ({len(cal.fits)} dispatch fits, {len(compute)} compute models) in {res.seconds:.0f} s"]
    res.lines += [f"wrote {p} (for --compute-calibration)" for p in files]
    return res
