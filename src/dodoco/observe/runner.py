"""The observation runner: model x conditions x sequence length -> one run directory each."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
from pathlib import Path

import numpy as np

from dodoco import provenance
from dodoco.conditions import is_mock, resolve
from dodoco.errors import DodocoError
from dodoco.models.load import load_model
from dodoco.models.loaded import LoadedModel
from dodoco.observe import invariance
from dodoco.observe.capture import RoutingCapture
from dodoco.observe.config import ObserveConfig
from dodoco.store import manifest as mf
from dodoco.store.run import run_dir_name
from dodoco.store.writer import RunWriter


def dist_context(device: str = "cpu") -> tuple[int, int]:
    """(rank, world size); under torchrun, joins the process group (NCCL when observing on CUDA, else gloo)."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def versions() -> dict:
    return provenance.versions("torch", "transformers", "numpy")


def _forward_fn(model):
    """``f(ids) -> None`` running the model once, asking only the last position's logits if supported."""
    import torch

    params = inspect.signature(model.forward).parameters
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
    if "use_cache" in params:
        extra["use_cache"] = False
    device = next(model.parameters()).device

    def forward(ids: np.ndarray):
        with torch.inference_mode():
            model(input_ids=torch.as_tensor(ids, device=device), **extra)

    return forward


def _condition_ids(loaded: LoadedModel, condition: str, seq_len: int, S: int, seed: int):
    """``(ids[S, seq_len], provenance)`` of a condition for this model; every id fits its embedding."""
    generator, arg = resolve(condition)
    tokenizer = loaded.tokenizer
    embed = loaded.model.get_input_embeddings().num_embeddings
    if tokenizer.vocab_size > embed:  # never emit an id the model cannot embed
        tokenizer = dataclasses.replace(tokenizer, vocab_size=embed)
    ids, prov = generator(tokenizer, seq_len, S, seed, arg)
    top = int(ids.max(initial=0))
    if top >= embed:
        raise DodocoError(
            f"condition '{condition}' encodes to token id {top}, but {loaded.info['id']} embeds only "
            f"{embed} ids: the tokenizer ({tokenizer.name}) does not belong to this model"
        )
    return ids, prov


def device_identity(model) -> str:
    """The kind of device ``model`` computes on, as part of a run's identity: ``cpu``, ``mps`` or
    ``cuda <GPU name>`` (kernels, and so routing ties, differ between them; the index does not matter,
    so every rank of a sharded observe has the same)."""
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return device.type


def run_spec(loaded: LoadedModel, cfg: ObserveConfig, condition: str, provenance: dict) -> dict:
    """The identity of one run: everything that determines its data (docs/run-format.md, "Identity").
    A run directory resumes only when this is unchanged."""
    return {
        "model": loaded.info["id"],
        "weights": loaded.info["identity"]["digest"],
        "tokenizer": loaded.tokenizer.name,
        "condition": condition,
        "data": provenance["identity"],
        "seq_len": cfg.seq_len,
        "sequences": cfg.sequences,
        "seed": cfg.seed,
        "dtype": loaded.info["dtype"],
        "device": device_identity(loaded.model),
        "batch_size": cfg.batch_size,
        "traces": cfg.traces,
    }


def _open_writer(path: Path, spec: dict, overwrite: bool, rank: int, world: int) -> RunWriter:
    """Rank 0 locks and opens (with overwrite, replaces) the run directory first; the other ranks join it.
    A refusal on rank 0 is raised after the barrier, so that no rank waits for it forever."""
    writer, error = None, None
    if rank == 0:
        try:
            writer = RunWriter(path, spec, origin=mf.Origin.OBSERVED, overwrite=overwrite)
        except DodocoError as exc:
            error = str(exc)
    if world > 1:
        import torch.distributed as dist

        shared = [error]
        dist.broadcast_object_list(shared, src=0)  # every rank learns whether rank 0 may write
        error = shared[0]
    if error is not None:
        raise DodocoError(error)
    return writer or RunWriter(path, spec, origin=mf.Origin.OBSERVED, lock=False)


def _note(progress, lines: list[str]) -> None:
    for line in lines:
        if progress is not None:
            progress.console.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)
        else:
            print(f"note: {line}", file=sys.stderr)
    lines.clear()


def observe_condition(loaded: LoadedModel, condition: str, cfg: ObserveConfig, progress=None) -> Path:
    """Observe one condition into ``out/<condition>-L<seq_len>``; resumes a partial run of the same spec.

    The data is made (and checked) before the run directory is touched, so a failing check leaves an
    existing run as it was. Under torchrun, rank r runs batches r, r + W, r + 2W, ... of the same batch
    boundaries and writes them as parts of the one run directory; rank 0 merges them, so the result is
    the same run a single process would write.
    """
    rank, world = dist_context()
    path = Path(cfg.out) / run_dir_name(condition, cfg.seq_len)
    ids, provenance = _condition_ids(loaded, condition, cfg.seq_len, cfg.sequences, cfg.seed)
    writer = _open_writer(path, run_spec(loaded, cfg, condition, provenance), cfg.overwrite, rank, world)
    try:
        return _observe_into(writer, loaded, ids, provenance, condition, cfg, progress, rank, world)
    finally:
        _note(progress, writer.notes)
        writer.close()


def _observe_into(
    writer: RunWriter,
    loaded: LoadedModel,
    ids,
    provenance: dict,
    condition: str,
    cfg: ObserveConfig,
    progress,
    rank: int,
    world: int,
) -> Path:
    """The forward passes of the batches not done yet, then (rank 0) the finalized run."""
    if writer.complete:
        return writer.path
    forward = _forward_fn(loaded.model)
    cap = RoutingCapture(loaded.model, traces=cfg.traces).attach()
    done, B, S = writer.done_parts(), cfg.batch_size, cfg.sequences
    _note(progress, writer.notes)
    task = progress.add_task(f"{loaded.info['id']} {condition}", total=S) if progress else None
    started, fresh_tokens = time.perf_counter(), 0
    try:
        for index, start in enumerate(range(0, S, B)):
            if index % world == rank and start not in done:
                cap.reset()
                forward(ids[start : start + B])
                writer.write_part(start, cap.counts(), cap.seq_tokens(), cap.traces()[0] if cfg.traces else None)
                fresh_tokens += int(cap.seq_tokens().sum())
            if progress:
                progress.update(task, completed=min(start + B, S))
    finally:
        cap.detach()
    elapsed = time.perf_counter() - started
    _barrier(world)
    if rank != 0:
        return writer.path
    rate = round(fresh_tokens / elapsed, 1) if elapsed > 0 and fresh_tokens else None
    details = {
        "seed": cfg.seed,
        "batch_invariance": _invariance(loaded.model, ids, B) if cfg.invariance else None,
        "throughput": {"tokens": fresh_tokens, "seconds": round(elapsed, 3), "tokens_per_s": rate},
        "versions": versions(),
        "device": loaded.info["device"],
        "dtype": loaded.info["dtype"],
        "ranks": world,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    writer.finalize(
        observed_manifest(loaded.info, condition, provenance, seq_len=cfg.seq_len, sequences=S, details=details)
    )
    return writer.path


def observed_manifest(
    info: dict, condition: str, provenance: dict, *, seq_len: int, sequences: int, details: dict
) -> mf.Manifest:
    """The typed manifest of an observed run (the writer adds identity, status and file checksums)."""
    model = {k: v for k, v in info.items() if k not in ("E", "K", "L", "moe_layer_ids")}
    return mf.Manifest(
        status=mf.Status.RUNNING,
        origin=mf.Origin.OBSERVED,
        identity={},
        model=mf.ModelInfo(
            id=model.pop("id"),
            revision=model.pop("revision", None),
            architecture=model.pop("architecture", None),
            details=model,
        ),
        routing=mf.Routing(
            E=int(info["E"]), K=int(info["K"]), L=int(info["L"]), layer_ids=tuple(int(x) for x in info["moe_layer_ids"])
        ),
        condition=mf.ConditionInfo(
            name=condition,
            kind=mf.ConditionKind.MOCK if is_mock(condition) else mf.ConditionKind.REAL,
            provenance=provenance,
        ),
        seq_len=int(seq_len),
        sequences=int(sequences),
        granularity=mf.Granularity.SEQUENCE,
        details=details,
    )


def _invariance(model, ids: np.ndarray, batch_size: int) -> dict:
    forward = _forward_fn(model)

    def run(sample):
        cap = RoutingCapture(model, traces=True).attach()
        try:
            forward(sample)
        finally:
            cap.detach()
        return cap.traces()[0]

    return invariance.measure(run, ids, batch_size)


def observe(model, conditions, **settings) -> list[Path]:
    """Observe ``model`` (a name or a ``LoadedModel``) on each condition; return the run directories.
    ``settings``: the other keys of ``ObserveConfig`` (seq_len, sequences and out are required).

    >>> dodoco.observe("tiny:qwen3_moe", ["mock-uniform", "prose"], seq_len=256, sequences=32,
    ...                out="runs/demo")                              # doctest: +SKIP
    """
    loaded = model if isinstance(model, LoadedModel) else None
    if isinstance(conditions, str):
        conditions = [c.strip() for c in conditions.split(",") if c.strip()]
    if "out" in settings:
        settings["out"] = str(settings["out"])
    cfg = ObserveConfig.from_dict(
        {"model": loaded.info["id"] if loaded else model, "conditions": list(conditions), **settings}
    )
    return observe_runs(cfg, loaded)


def observe_runs(cfg: ObserveConfig, loaded: LoadedModel | None = None) -> list[Path]:
    """Run one ``ObserveConfig``: load the model (unless given), observe each condition into its run
    directory. The metrics table is written by ``dodoco.analysis`` (``dodoco analyze``, or the
    observe command after this)."""
    from dodoco.progress import progress_bar

    for c in cfg.conditions:
        resolve(c)  # unknown names fail before the model loads
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise DodocoError(f"--out {out} is a file: give a folder (one run directory per condition goes inside)")
    device, (rank, world) = cfg.device, dist_context(cfg.device)
    if world > 1 and device.startswith("cuda"):
        import os

        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    with progress_bar("{task.description}", disable=cfg.quiet or rank != 0) as progress:
        loaded = loaded or load_model(
            cfg.model, dtype=cfg.dtype, device=device, trust_remote_code=cfg.trust_remote_code, seed=cfg.seed
        )
        context = loaded.info.get("context")
        if context and cfg.seq_len > context:
            raise DodocoError(
                f"--seq-len {cfg.seq_len} is beyond {loaded.info['id']}'s context of {context} "
                f"tokens (max_position_embeddings): use --seq-len {context} or less"
            )
        paths = [observe_condition(loaded, c, cfg, progress=progress) for c in cfg.conditions]
    return paths
