"""What an import assembles (``Assembled``) and the scratch files it is assembled in: shared by the
counts path (``ingest.assemble``) and the token path (``ingest.assemble_tokens``).

Shape legend: S rows, L' kept layers, E logical experts, T tokens, K experts per token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.ingest.stream import CountsStream

__all__ = ["Assembled", "finish_file", "scratch_counts", "window"]

_U32 = np.iinfo(np.uint32).max


@dataclass
class Assembled:
    """The arrays of an imported run (counts may be a memory map inside ``scratch``)."""

    counts: np.ndarray | CountsStream  # [S, L', E] uint32 (CountsStream: written by write_run)
    seq_tokens: np.ndarray  # [S] int64
    kept_layers: list[int]  # indices into the dumped layers
    excluded_layers: list[int]
    dropped_rows: int
    E: int
    K: int | None
    tokens: np.ndarray | None = None  # [T, L', K] uint8/uint16
    token_offsets: np.ndarray | None = None  # [S+1] int64
    notes: list[str] = field(default_factory=list)


def scratch_counts(scratch: Path, name: str, shape) -> np.ndarray:
    """A uint32 array of ``shape`` memory-mapped in ``scratch`` (refused when the disk lacks the room)."""
    import shutil

    scratch.mkdir(parents=True, exist_ok=True)
    need, free = int(np.prod(shape, dtype=np.float64)) * 4, shutil.disk_usage(scratch).free
    if need > free:
        raise DodocoError(
            f"the counts {list(shape)} need {need / 2**30:.3g} GiB in {scratch}, but its disk has "
            f"{free / 2**30:.3g} GiB free: free space, or import fewer files at a time"
        )
    return np.lib.format.open_memmap(scratch / name, mode="w+", dtype=np.uint32, shape=tuple(shape))


def window(res: Assembled, scratch: Path) -> Assembled:
    """Collapse every row into one aggregate window [1, L', E] (token traces are dropped); its tokens
    are its busiest layer's assignments // K, the rule of every counts row (store.check)."""
    total = np.zeros(res.counts.shape[1:], dtype=np.int64)
    step = max(1, (1 << 27) // max(1, res.counts.shape[1] * res.counts.shape[2] * 4))
    for i in range(0, res.counts.shape[0], step):
        total += res.counts[i : i + step].sum(axis=0, dtype=np.int64)
    if total.max(initial=0) > _U32:
        raise DodocoError("the summed window overflows uint32 counts: import without --as-window")
    out = scratch_counts(scratch, "counts.window.npy", (1,) + total.shape)
    out[0] = total
    res.counts, res.seq_tokens = out, np.asarray([total.sum(axis=1).max(initial=0) // (res.K or 1)], dtype=np.int64)
    res.tokens = res.token_offsets = None
    return res


def finish_file(arr: np.ndarray) -> Path:
    """Flush a scratch memmap to disk (fsync) and return its path."""
    arr.flush()
    path = Path(arr.filename)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
