"""The timed AlltoAll: buffers, the correctness check, timing and the max over ranks.

One harness serves every variant (split replay, raw uniform sweep): ``time_collective`` runs an
iteration function over rotating buffer sets, records per-iteration phase times (CUDA events on
GPUs, ``time.perf_counter`` on the gloo CPU dry run), and takes the max over ranks per iteration
with one all_reduce(MAX). ``Watchdog`` stops a rank whose peers stopped answering.

Shape legend: N ranks, H hidden size (row width), rows = per-expert copies.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time

import numpy as np
import torch
import torch.distributed as dist

from dodoco.errors import DodocoError

__all__ = ["Watchdog", "check_rows", "fill_rows", "free_memory", "l2_bytes", "n_buffer_sets",
           "need_memory", "time_collective", "torch_dtype"]

_TORCH_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
                 "fp32": "float32", "float32": "float32", "fp8": "float8_e4m3fn"}
DEFAULT_L2 = 60 << 20  # H200; H100 has 50 MB


def torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, _TORCH_DTYPES[name])


class Watchdog:
    """Calls ``on_timeout(message)`` when ``beat()`` was not called for ``timeout_s`` seconds.

    The default action prints the message and ends the process with status 3, so a rank whose peer
    died never hangs in a collective (the process-group timeout is the second line of defence).
    """

    def __init__(self, timeout_s: float, rank: int, on_timeout=None):
        self.timeout_s, self.rank = float(timeout_s), rank
        self.on_timeout = on_timeout or self._exit
        self._last, self._stop = time.monotonic(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dodoco-replay-watchdog")

    def _exit(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        os._exit(3)

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout_s / 4)):
            idle = time.monotonic() - self._last
            if idle > self.timeout_s:
                self.on_timeout(f"replay: rank {self.rank} made no progress for {idle:.0f} s (a peer rank "
                                f"probably failed, see its message): stopping; raise --timeout if the "
                                f"replay is just slow")
                return

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def beat(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()


def l2_bytes(device) -> int:
    """L2 cache size of a CUDA device in bytes (DEFAULT_L2 on CPU or when unknown)."""
    if device.type != "cuda":
        return DEFAULT_L2
    return int(getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or DEFAULT_L2)


def n_buffer_sets(set_bytes: int, l2: int, minimum: int = 4, cap: int = 64) -> int:
    """Rotating buffer sets: at least ``minimum``, and enough that they total > 2 x L2 (<= cap)."""
    need = math.ceil(2 * l2 / max(1, set_bytes)) + 1
    return int(max(minimum, min(cap, need)))


def need_memory(send_rows: int, recv_rows: int, row_bytes: int, sets: int) -> int:
    """Bytes one rank allocates for ``sets`` rotating sets of (send, recv, combine-back) buffers."""
    return int(sets) * (2 * int(send_rows) + int(recv_rows)) * int(row_bytes)


def free_memory(device) -> tuple[int, str]:
    """(free bytes, description) of the device the buffers go to (host memory on CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"GPU {device.index} has {free / 2**30:.1f} GiB free"
    avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return int(avail), f"the host has {avail / 2**30:.1f} GiB available"


def _row_words(row_bytes: int) -> int | None:
    return row_bytes // 4 if row_bytes % 4 == 0 else None


def _pattern(src_rank: int, first_row: int, n: int, device) -> torch.Tensor:
    """int32 [n]: (source rank << 24) | row index in the source's send buffer, rows first_row..+n."""
    rows = torch.arange(first_row, first_row + n, dtype=torch.int64, device=device)
    return ((src_rank << 24) | (rows & 0xFFFFFF)).to(torch.int32)


def fill_rows(send: torch.Tensor, rank: int) -> bool:
    """Fill every row of send[rows, H] with its code (rank, row); False when rows are not 4-byte words."""
    words = _row_words(send.shape[1] * send.element_size()) if send.dim() == 2 else None
    if words is None or send.shape[0] == 0:
        return words is not None
    v = send.view(torch.int32).view(send.shape[0], words)
    v.copy_(_pattern(rank, 0, send.shape[0], send.device)[:, None].expand(-1, words))
    return True


def check_rows(recv: torch.Tensor, rank: int, splits: np.ndarray) -> int:
    """Rows of recv[rows, H] that do not carry the code their source wrote -> count of bad rows.

    splits[i, j]: rows i sends to j. Rows from source j arrive in source order; their index in j's
    send buffer starts at sum(splits[j, :rank]).
    """
    words = _row_words(recv.shape[1] * recv.element_size())
    v = recv.view(torch.int32).view(recv.shape[0], words)
    parts, N = [], splits.shape[0]
    for j in range(N):
        n = int(splits[j, rank])
        if n:
            parts.append(_pattern(j, int(splits[j, :rank].sum()), n, recv.device))
    if not parts:
        return 0
    expect = torch.cat(parts)
    if expect.shape[0] != v.shape[0]:
        return max(expect.shape[0], v.shape[0])
    return int((v != expect[:, None]).any(dim=1).sum().item())


class _Clock:
    """Per-iteration phase marks: CUDA events on a GPU, perf_counter on CPU -> times [iters, phases] ms."""

    def __init__(self, device, iters: int, phases: int):
        self.cuda = device.type == "cuda"
        self.shape = (iters, phases + 1)
        if self.cuda:
            self.events = [[torch.cuda.Event(enable_timing=True) for _ in range(phases + 1)]
                           for _ in range(iters)]
        else:
            self.stamps = np.zeros(self.shape)

    def mark(self, it: int, k: int) -> None:
        if self.cuda:
            self.events[it][k].record()
        else:
            self.stamps[it, k] = time.perf_counter()

    def times_ms(self) -> np.ndarray:
        if self.cuda:
            torch.cuda.synchronize()
            return np.array([[ev[k].elapsed_time(ev[k + 1]) for k in range(self.shape[1] - 1)]
                             for ev in self.events])
        return np.diff(self.stamps, axis=1) * 1e3


def time_collective(step, n_sets: int, warmup: int, iters: int, phases: int, device, group=None) -> np.ndarray:
    """Time ``step(set_index, mark)`` -> float64 [iters, phases] ms, the max over ranks per iteration.

    ``step`` runs one iteration on buffer set ``set_index`` and calls ``mark(k)`` after phase k
    (k = 1..phases); mark(0) is taken before it. Warm-up iterations are not timed. Ranks line up
    with a barrier before the timed loop; one all_reduce(MAX) gathers every iteration's times.
    """
    for w in range(warmup):
        step(w % n_sets, lambda k: None)
    dist.barrier(group=group)
    clock = _Clock(device, iters, phases)
    for it in range(iters):
        clock.mark(it, 0)
        step((warmup + it) % n_sets, lambda k, it=it: clock.mark(it, k))
    t = torch.as_tensor(clock.times_ms(), dtype=torch.float64)
    if device.type == "cuda":
        t = t.to(device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return t.cpu().numpy()


def check_memory(need: int, device, what: str) -> None:
    """Raise DodocoError when ``need`` bytes exceed 90% of the device's free memory."""
    free, desc = free_memory(device)
    if need > 0.9 * free:
        raise DodocoError(f"{what} need {need / 2**30:.2f} GiB per rank but {desc}: lower --hidden, "
                          "--batch or --sweep-max, or use a smaller --dtype")
