"""Write an assembled import as a run directory (manifest kind "imported")."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from dodoco.ingest.assembled import Assembled, finish_file
from dodoco.ingest.base import Dump
from dodoco.ingest.stream import CountsStream
from dodoco.provenance import versions
from dodoco.store import atomic
from dodoco.store.manifest import (
    ConditionInfo,
    ConditionKind,
    Granularity,
    Manifest,
    ModelInfo,
    Origin,
    Routing,
    Status,
)
from dodoco.store.writer import RunWriter


def _tokens_per_row(seq_tokens: np.ndarray) -> dict:
    if not seq_tokens.size:
        return {}
    return {
        "mean": round(float(seq_tokens.mean()), 3),
        "median": float(np.median(seq_tokens)),
        "min": int(seq_tokens.min()),
        "max": int(seq_tokens.max()),
    }


def manifest(
    dump: Dump,
    asm: Assembled,
    *,
    files: list[dict],
    layer_ids: list[int],
    model_id: str | None,
    condition: str,
    seq_len: int,
    rows: str,
    options: dict,
) -> Manifest:
    """The typed manifest of an imported run (the writer adds identity, status and file checksums)."""
    kept_ids = [int(layer_ids[i]) for i in asm.kept_layers]
    excluded = [
        {"layer": int(layer_ids[i]), "reason": "no routed tokens (dense layer or layer never recorded)"}
        for i in asm.excluded_layers
    ]
    gran = "window" if options.get("as_window") else dump.granularity
    details = {
        "rows": "all rows summed into one window" if options.get("as_window") else rows,
        "tokens_per_row": _tokens_per_row(asm.seq_tokens),
        "source": {
            "format": dump.format,
            "engine": dump.engine,
            "engine_version": dump.engine_version,
            "mode": dump.mode,
            "files": files,
            "options": options,
            **dump.extra,
        },
        "excluded_layers": excluded,
        "dropped_rows": {
            "count": int(asm.dropped_rows),
            "reason": "no routed tokens in any MoE layer (unfilled buffer slots, idle passes, padding)",
        },
        "notes": dump.notes + asm.notes,
        "versions": versions("numpy", "pyarrow"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return Manifest(
        status=Status.RUNNING,
        origin=Origin.IMPORTED,
        identity={},
        model=ModelInfo(id=model_id or dump.model_id or "unknown", details={"imported": True}),
        routing=Routing(E=int(asm.E), K=int(asm.K) if asm.K else None, L=len(kept_ids), layer_ids=tuple(kept_ids)),
        condition=ConditionInfo(
            name=condition, kind=ConditionKind.REAL, provenance={"imported_from": dump.format, "engine": dump.engine}
        ),
        seq_len=int(seq_len),
        sequences=int(asm.counts.shape[0]),
        granularity=Granularity(gran),
        details=details,
    )


def write_run(out: Path, asm: Assembled, man: Manifest, spec: dict, *, overwrite: bool) -> Manifest:
    """Stream (or move) the counts into ``out`` and write the other files and the manifest atomically."""
    streamed = isinstance(asm.counts, CountsStream)
    counts_path = None if streamed else finish_file(asm.counts)
    writer = RunWriter(out, spec, origin=Origin.IMPORTED, overwrite=overwrite, lock=False)  # import_dump holds it
    writer.clear_data()  # a rerun of the same spec rewrites every file DODOCO wrote
    checksums = {}
    if streamed:  # hashed while written: the manifest does not read 6 GB back
        checksums["counts.npy"] = asm.counts.write(writer.path / "counts.npy")
    else:
        os.replace(counts_path, writer.path / "counts.npy")
    atomic.save_npy(writer.path / "seq_tokens.npy", asm.seq_tokens.astype(np.int64))
    if asm.tokens is not None:
        atomic.save_npy(writer.path / "tokens.npy", asm.tokens)
        atomic.save_npy(writer.path / "token_offsets.npy", asm.token_offsets.astype(np.int64))
    return writer.write_manifest(man, checksums=checksums)
