"""Import expert-load dumps of serving and training engines as DODOCO run directories.

>>> from dodoco.ingest import ImportConfig, import_dump
>>> import_dump(ImportConfig(format="sglang", paths=("expert_distribution_recorder_1716.pt",),
...                          out="runs/prod", model_id="deepseek-ai/DeepSeek-V3"))   # doctest: +SKIP

``FORMATS`` lists the importers (``dodoco import FORMAT PATH... -o RUN``). Every importer reads its
files into a ``Dump`` (dodoco.ingest.base); ``assemble`` forms the rows (forward passes, ranks
summed unless ``split_ranks``), maps physical to logical experts, drops dense layers (all-zero) and
empty rows; ``write_run`` stores the run with manifest kind "imported" and its granularity:
"window" (aggregate counts: aggregate metrics, rank loads, placements, NeuSim export; no per-step
metrics), "pass" (one row per forward pass) or "token" (per-token top-k ids as well).
docs/ingest.md says how to obtain each dump.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dodoco.errors import DodocoError
from dodoco.ingest.config import ImportConfig
from dodoco.registry import Registry

__all__ = ["FORMATS", "ImportConfig", "import_dump"]

FORMATS = Registry("format")
for _name, _target, _summary in (
    (
        "sglang",
        "dodoco.ingest.sglang:read",
        "SGLang expert-distribution recorder: stat / per_pass / per_token .pt dumps, "
        "--init-expert-location JSON (logical_count)",
    ),
    ("vllm", "dodoco.ingest.vllm:read", "vLLM EPLB expert_load_window per rank (saved with dodoco.ingest.vllm_dump)"),
    (
        "megatron",
        "dodoco.ingest.megatron:read_trace",
        "Megatron-Core router traces router_trace_rank*.jsonl (--moe-routing-trace-path)",
    ),
    (
        "megatron-tpe",
        "dodoco.ingest.megatron:read_tpe",
        "Megatron tokens_per_expert/rank*.jsonl (--save-tokens-per-expert-interval)",
    ),
    (
        "flame",
        "dodoco.ingest.flame:read",
        "FLAME-MoE pretraining router traces: actives/iter_N/layer_NN.parquet (top-6 indices "
        "per token; rows cut by --seq-len)",
    ),
    (
        "table",
        "dodoco.ingest.tables:read_table",
        "CSV / TSV / Parquet with columns layer, expert, count[, step][, rank]",
    ),
    (
        "numpy",
        "dodoco.ingest.tables:read_array",
        "count arrays [L, E] (a window) or [steps, L, E] (.npy, .npz, bare tensor .pt)",
    ),
):
    FORMATS.register(_name, _target, _summary)


def _check_layer_ids(layer_ids, L: int, source: str) -> list[int]:
    if len(layer_ids) != L:
        raise DodocoError(
            f"--layer-ids lists {len(layer_ids)} layers but {source} has {L} layers per record: "
            f"give one model layer id per dumped layer"
        )
    return [int(x) for x in layer_ids]


def _files(paths) -> list[Path]:
    """The input files: each path, or the files of each folder (hidden names and subfolders skipped);
    every one a regular file (a FIFO or a device, which would hang a read, is refused in one line)."""
    from dodoco.paths import regular

    files = []
    for p in map(Path, paths):
        if p.is_dir():
            inner = sorted(q for q in p.iterdir() if not q.name.startswith(".") and not q.is_dir())
            if not inner:
                raise DodocoError(f"input folder '{p}' holds no files")
            files.extend(inner)
        elif not p.exists() and not p.is_symlink():
            raise DodocoError(f"input file '{p}' does not exist")
        else:
            files.append(p)
    for f in files:
        regular(f, "input file")
    return files


def _hash_all(files: list[Path]):
    from dodoco.store.atomic import sha256_file

    pool = ThreadPoolExecutor(max_workers=2)  # hashlib releases the GIL: hashing overlaps with parsing
    return pool, [pool.submit(sha256_file, f, "input file", DodocoError) for f in files]


def scratch_dir(out: Path) -> Path:
    """Where an import into ``out`` assembles large intermediate arrays (removed when it ends)."""
    return out.parent / f".{out.name}.dodoco-import"


def import_dump(cfg: ImportConfig):
    """Import the engine files ``cfg.paths`` (files or folders) in format ``cfg.format`` into the run
    directory ``cfg.out``, holding its lock throughout (a second import or observe there is refused).

    Returns the written Manifest; its details' ``excluded_layers`` and ``dropped_rows`` say what was left out.
    """
    from dodoco.store.lock import RunLock, remove_stale_temps

    reader = FORMATS.get(cfg.format)
    files = _files(cfg.paths)
    out = Path(cfg.out)
    with RunLock(out):
        scratch = scratch_dir(out)
        shutil.rmtree(scratch, ignore_errors=True)  # left by an import that was killed (kill -9)
        remove_stale_temps(out)
        pool, hashes = _hash_all(files)
        try:
            return _import(cfg, reader, files, hashes, out, scratch)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            shutil.rmtree(scratch, ignore_errors=True)


def _import(cfg: ImportConfig, reader, files: list[Path], hashes, out: Path, scratch: Path):
    from dodoco.ingest.assemble import assemble
    from dodoco.ingest.write import manifest, write_run

    dump = reader([str(f) for f in files], cfg)
    if cfg.engine_version:
        dump.engine_version = cfg.engine_version
    if not (cfg.model_id or dump.model_id):
        dump.notes.append("model unknown: pass --model-id to label the run")
    first = next((r for r in dump.records if r.n), None)
    if first is None:
        raise DodocoError(f"no records to import in {[str(f) for f in files]} (after --ranks)")
    L = first.row_shape()[0]
    ids = _check_layer_ids(cfg.layer_ids, L, first.source) if cfg.layer_ids else (dump.layer_ids or list(range(L)))
    asm = assemble(
        dump,
        scratch,
        split_ranks=cfg.split_ranks,
        num_experts=cfg.num_experts,
        top_k=cfg.top_k,
        as_window=cfg.as_window,
    )
    sources = [
        {"path": str(f.resolve()), "bytes": f.stat().st_size, "sha256": h.result()} for f, h in zip(files, hashes)
    ]
    rows = dump.rows if not cfg.split_ranks else f"{dump.rows.split(',')[0]} of one rank (ranks kept separate)"
    spec = {
        "import": cfg.format,
        "files": [s["sha256"] for s in sources],
        "options": cfg.options(),
        "model": cfg.model_id,
        "condition": cfg.condition,
    }
    man = manifest(
        dump,
        asm,
        files=sources,
        layer_ids=ids,
        model_id=cfg.model_id,
        condition=cfg.condition,
        seq_len=cfg.seq_len,
        rows=rows,
        options=cfg.options(),
    )
    return write_run(out, asm, man, spec, overwrite=cfg.overwrite)
