"""Stream an import's counts straight into ``counts.npy``: no [S, L, E] array in memory, no scratch
copy, no read-back to checksum.

Used by ``assemble`` when every row of the run comes from exactly one record (rows not summed over
ranks) and each record block covers a contiguous range of rows, e.g. successive per-pass dumps of
one rank, or stat buffers. Pass 1 (in assemble) validates every block and sums its rows per layer,
which decides the kept (MoE) layers and kept rows before a byte is written: a layer is excluded only
when it is zero in the whole dump. Pass 2 (here) gathers each kept row's kept layers in logical
expert order into a ring of chunk buffers; one thread appends each full chunk to a temp file in the
run directory while another feeds the same bytes to sha256, so the digest covers exactly the bytes
written (header + data) and the file is fsynced and renamed into place (dodoco.store.atomic).

Shape legend: R records of a block, L layers as dumped, L' kept layers, P physical experts,
E logical experts.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dodoco.ingest.base import LogicalMap
from dodoco.store import atomic

CHUNK_BYTES = 1 << 26  # one chunk buffer; three are in flight (mapping, writing, hashing)
ALIGN = 4096  # O_DIRECT offset, length and address alignment
_O_DIRECT = getattr(os, "O_DIRECT", 0)
USE_DIRECT = bool(_O_DIRECT)  # tests switch it off to check that both paths write the same bytes


@dataclass
class Block:
    """One record block in row order: x[src[i]] becomes the next row of the run."""

    x: np.ndarray  # [R, L, P] uint32 (usually a strided view of the memory-mapped input file)
    src: np.ndarray  # int64 [R'] records of x to write (sorted by row, empty rows left out)
    lm: LogicalMap | None  # None when x is in logical expert order already


def npy_header(shape: tuple[int, ...], dtype=np.uint32) -> bytes:
    """The .npy header np.save writes for a C-ordered array of this shape and dtype (format 1.0)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": tuple(int(n) for n in shape),
        },
    )
    return buf.getvalue()


class CountsStream:
    """The counts ``[S', L', E]`` uint32 of an import, to be written once with ``write``."""

    dtype = np.dtype(np.uint32)

    def __init__(self, blocks: list[Block], kept: list[int], E: int):
        self.blocks, self.kept, self.E = blocks, [int(k) for k in kept], int(E)
        self.shape = (int(sum(b.src.size for b in blocks)), len(self.kept), self.E)
        self._gathers: dict = {}

    def _gather(self, lm: LogicalMap | None, L: int, P: int):
        """(flat source index [L'*E], replica adds [(dst flat, src flat)]) of the kept layers."""
        key = (id(lm), L, P)
        if key not in self._gathers:
            kept = np.asarray(self.kept, dtype=np.int64)
            first = lm.first[kept] if lm is not None else np.broadcast_to(np.arange(self.E), (kept.size, self.E))
            flat = (kept[:, None] * P + first).reshape(-1)
            adds = []
            pos = np.full(L, -1, dtype=np.int64)
            pos[kept] = np.arange(kept.size)
            for layer, logical, phys in lm.extra if lm is not None else []:
                sel = pos[layer] >= 0
                adds.append((pos[layer[sel]] * self.E + logical[sel], layer[sel] * P + phys[sel]))
            self._gathers[key] = (flat, adds)
        return self._gathers[key]

    def _chunks(self):
        """Yield (buffer index or None, bytes to write, aligned): the header and rows packed into a
        ring of page-aligned buffers; every write but the last is a multiple of ALIGN bytes (for
        O_DIRECT), its unaligned remainder carried to the front of the next buffer. A None index
        asks the caller to wait until that buffer is free (yielded before it is refilled)."""
        row = self.shape[1] * self.shape[2]
        rb = row * 4
        per = max(1, CHUNK_BYTES // rb)
        size = -(-(per * rb + 2 * ALIGN) // ALIGN) * ALIGN
        ring = [
            np.frombuffer(mmap.mmap(-1, size), dtype=np.uint8) for _ in range(min(3, -(-self.shape[0] // per) or 1))
        ]
        carry, k, fill = npy_header(self.shape), 0, 0
        for b in self.blocks:
            R, L, P = b.x.shape
            x2 = b.x.reshape(R, L * P)
            flat, adds = self._gather(b.lm, L, P)
            i = 0
            while i < b.src.size:
                if fill == 0:
                    yield k, None, False  # the caller waits until buffer k is free again
                    ring[k][: len(carry)] = np.frombuffer(carry, dtype=np.uint8)
                m = min(per - fill, b.src.size - i)
                base = len(carry) + fill * rb
                dst, rows = ring[k][base : base + m * rb].view(np.uint32).reshape(m, row), b.src[i : i + m]
                for j, s in enumerate(rows):  # one contiguous input row at a time: a cheap gather
                    np.take(x2[s], flat, out=dst[j])
                for d, s in adds:  # redundant replicas of a logical expert summed in
                    dst[:, d] += x2[rows][:, s]
                i, fill = i + m, fill + m
                if fill == per:
                    n = len(carry) + fill * rb
                    w = n // ALIGN * ALIGN
                    yield k, memoryview(ring[k])[:w], True
                    carry, k, fill = bytes(ring[k][w:n]), (k + 1) % len(ring), 0
        if fill or carry:
            if fill == 0:
                yield k, None, False
                ring[k][: len(carry)] = np.frombuffer(carry, dtype=np.uint8)
            yield k, memoryview(ring[k])[: len(carry) + fill * rb], False

    def write(self, path: Path) -> str:
        """Write the .npy file atomically (temp file in its directory, fsync, rename); returns its sha256."""
        digest = hashlib.sha256()
        pending: dict[int, tuple] = {}
        with atomic.atomic_fd(Path(path)) as fd:
            sink = _Sink(fd)
            with ThreadPoolExecutor(1) as hasher, ThreadPoolExecutor(1) as writer:
                try:
                    for k, data, aligned in self._chunks():
                        if data is None:
                            for fut in pending.pop(k, ()):
                                fut.result()  # buffer k hashed and written: free to refill
                        else:
                            pending[k] = (hasher.submit(digest.update, data), writer.submit(sink.write, data, aligned))
                    for futs in pending.values():
                        for fut in futs:
                            fut.result()
                except BaseException:
                    for futs in pending.values():
                        for fut in futs:
                            fut.cancel()
                    raise
            sink.buffered()
        return digest.hexdigest()


class _Sink:
    """Appends to fd, with O_DIRECT while writes are aligned (where the OS and file system allow it):
    streaming gigabytes through the page cache is throttled to the dirty-page writeback rate, several
    times slower than the disk here (bench/bench_ingest.py). Falls back to buffered writes silently."""

    def __init__(self, fd: int):
        self.fd = fd
        self.direct = USE_DIRECT and self._set(True)

    def _set(self, on: bool) -> bool:
        try:
            flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
            fcntl.fcntl(self.fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))
            return on
        except OSError:
            return False

    def buffered(self) -> None:
        if self.direct:
            self.direct = self._set(False)

    def write(self, data: memoryview, aligned: bool) -> None:
        if not aligned:
            self.buffered()
        while data.nbytes:
            try:
                n = os.write(self.fd, data)
            except OSError as exc:
                if not (self.direct and exc.errno == errno.EINVAL):
                    raise
                self.buffered()  # the file system refused O_DIRECT after all
                continue
            data = data[n:]
            if data.nbytes and n % ALIGN:
                self.buffered()  # a short unaligned write: the rest cannot be direct
