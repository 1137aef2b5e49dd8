"""The observation runner: model x conditions x sequence length -> one run directory each."""

from __future__ import annotations

import dataclasses
import inspect
import time
from pathlib import Path

import numpy as np

from dodoco import provenance
from dodoco.conditions import is_mock, resolve
from dodoco.errors import DodocoError
from dodoco.models.load import LoadedModel, load_model
from dodoco.observe import invariance
from dodoco.observe.capture import RoutingCapture
from dodoco.store.manifest import (ConditionInfo, ConditionKind, Granularity, Manifest, ModelInfo, Origin, Routing,
                                   Status)
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
    generator, arg = resolve(condition)
    tokenizer = loaded.tokenizer
    embed = loaded.model.get_input_embeddings().num_embeddings
    if tokenizer.vocab_size > embed:  # never emit an id the model cannot embed
        tokenizer = dataclasses.replace(tokenizer, vocab_size=embed)
    return generator(tokenizer, seq_len, S, seed, arg)


def observe_condition(loaded: LoadedModel, condition: str, *, seq_len: int, sequences: int, out: Path,
                      batch_size: int = 8, seed: int = 0, traces: bool = False, overwrite: bool = False,
                      invariance_check: bool = True, progress=None) -> Path:
    """Observe one condition into ``out/<condition>-L<seq_len>``; resumes a partial run of the same spec.

    Under torchrun, rank r runs batches r, r + W, r + 2W, ... of the same batch boundaries and writes
    them as parts of the one run directory; rank 0 merges them, so the result is the same run a single
    process would write.
    """
    rank, world = dist_context()
    path = Path(out) / run_dir_name(condition, seq_len)
    spec = {"model": loaded.info["id"], "revision": loaded.info.get("revision") or loaded.info.get("weights"),
            "condition": condition, "seq_len": seq_len, "sequences": sequences, "seed": seed,
            "dtype": loaded.info["dtype"], "batch_size": batch_size, "traces": traces}
    if rank == 0:
        writer = RunWriter(path, spec, overwrite=overwrite)
    _barrier(world)
    if rank != 0:
        writer = RunWriter(path, spec)
    if writer.complete:
        return path
    ids, provenance = _condition_ids(loaded, condition, seq_len, sequences, seed)
    forward = _forward_fn(loaded.model)
    cap = RoutingCapture(loaded.model, traces=traces).attach()
    done = writer.done_parts()
    task = progress.add_task(f"{loaded.info['id']} {condition}", total=sequences) if progress else None
    started, fresh_tokens = time.perf_counter(), 0
    try:
        for index, start in enumerate(range(0, sequences, batch_size)):
            if index % world == rank and start not in done:
                cap.reset()
                forward(ids[start:start + batch_size])
                topk = cap.traces()[0] if traces else None
                writer.write_part(start, cap.counts(), cap.seq_tokens(), topk)
                fresh_tokens += int(cap.seq_tokens().sum())
            if progress:
                progress.update(task, completed=min(start + batch_size, sequences))
    finally:
        cap.detach()
    elapsed = time.perf_counter() - started
    _barrier(world)
    if rank != 0:
        return path
    details = {
        "seed": seed, "batch_invariance": _invariance(loaded.model, ids, batch_size) if invariance_check else None,
        "throughput": {"tokens": fresh_tokens, "seconds": round(elapsed, 3),
                       "tokens_per_s": round(fresh_tokens / elapsed, 1) if elapsed > 0 and fresh_tokens else None},
        "versions": versions(), "device": loaded.info["device"], "dtype": loaded.info["dtype"], "ranks": world,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest = observed_manifest(loaded.info, condition, provenance, seq_len=seq_len, sequences=sequences,
                                 details=details)
    writer.finalize(manifest)
    return path


def observed_manifest(info: dict, condition: str, provenance: dict, *, seq_len: int, sequences: int,
                      details: dict) -> Manifest:
    """The typed manifest of an observed run (the writer adds identity, status and file checksums)."""
    model = {k: v for k, v in info.items() if k not in ("E", "K", "L", "moe_layer_ids")}
    return Manifest(
        status=Status.RUNNING, origin=Origin.OBSERVED, identity={},
        model=ModelInfo(id=model.pop("id"), revision=model.pop("revision", None),
                        architecture=model.pop("architecture", None), details=model),
        routing=Routing(E=int(info["E"]), K=int(info["K"]), L=int(info["L"]),
                        layer_ids=tuple(int(x) for x in info["moe_layer_ids"])),
        condition=ConditionInfo(name=condition, kind=ConditionKind.MOCK if is_mock(condition) else ConditionKind.REAL,
                                provenance=provenance),
        seq_len=int(seq_len), sequences=int(sequences), granularity=Granularity.SEQUENCE, details=details)


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


def observe(model, conditions, *, seq_len: int, sequences: int, out, batch_size: int = 8, seed: int = 0,
            dtype: str = "auto", device: str = "cpu", traces: bool = False, trust_remote_code: bool = False,
            overwrite: bool = False, analyze: bool = True, batch_sizes=None, quiet: bool = False) -> list[Path]:
    """Observe ``model`` (a name or a ``LoadedModel``) on each condition; return the run directories.

    >>> dodoco.observe("tiny:qwen3_moe", ["mock-uniform", "prose"], seq_len=256, sequences=32,
    ...                out="runs/demo")                              # doctest: +SKIP
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if isinstance(conditions, str):
        conditions = [c for c in conditions.split(",") if c]
    for c in conditions:
        resolve(c)  # unknown names fail before the model loads
    if seq_len < 1 or sequences < 1 or batch_size < 1:
        raise DodocoError(f"--seq-len {seq_len}, --sequences {sequences} and --batch-size {batch_size} "
                          "must all be positive integers")
    paths = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    rank, world = dist_context(device)
    if world > 1 and device.startswith("cuda"):
        import os

        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    with Progress(*columns, disable=quiet or rank != 0, transient=False) as progress:
        loaded = model if isinstance(model, LoadedModel) else load_model(
            model, dtype=dtype, device=device, trust_remote_code=trust_remote_code, seed=seed)
        for condition in conditions:
            paths.append(observe_condition(loaded, condition, seq_len=seq_len, sequences=sequences, out=Path(out),
                                           batch_size=batch_size, seed=seed, traces=traces, overwrite=overwrite,
                                           progress=progress))
    if analyze and rank == 0:
        from dodoco.analysis import write_metrics

        for path in paths:
            write_metrics(path, batch_sizes=batch_sizes)
    return paths
