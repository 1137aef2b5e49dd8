"""The timed AlltoAll: buffers, the correctness check, timing and the max over ranks.

One harness serves every dispatcher and the raw sweep: ``time_collective`` runs an iteration
function over rotating buffer sets, records per-iteration stage times (CUDA events on GPUs,
``time.perf_counter`` on the gloo CPU dry run), and takes the max over ranks per iteration with one
all_reduce(MAX); ``time_direct`` times the same function in a bare loop (two marks around all
iterations), the reference the harness overhead is measured against; ``agree`` makes every rank
see the first failed check. ``Watchdog`` stops a rank whose peers stopped answering.

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

__all__ = [
    "Watchdog",
    "agree",
    "check_memory",
    "free_memory",
    "measure_link",
    "n_buffer_sets",
    "need_memory",
    "stats",
    "sync",
    "time_collective",
    "time_direct",
    "torch_dtype",
]

_TORCH_DTYPES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "fp32": "float32",
    "float32": "float32",
    "fp8": "float8_e4m3fn",
}


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
                self.on_timeout(
                    f"replay: rank {self.rank} made no progress for {idle:.0f} s (a peer rank "
                    f"probably failed, see its message): stopping; raise --timeout if the "
                    f"replay is just slow"
                )
                return

    def start(self) -> "Watchdog":
        self._thread.start()
        return self

    def beat(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()


def n_buffer_sets(set_bytes: int, l2: int, minimum: int = 2, cap: int = 64) -> int:
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


class _Clock:
    """Per-iteration phase marks: CUDA events on a GPU, perf_counter on CPU -> times [iters, phases] ms."""

    def __init__(self, device, iters: int, phases: int):
        self.cuda = device.type == "cuda"
        self.shape = (iters, phases + 1)
        if self.cuda:
            self.events = [[torch.cuda.Event(enable_timing=True) for _ in range(phases + 1)] for _ in range(iters)]
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
            return np.array([[ev[k].elapsed_time(ev[k + 1]) for k in range(self.shape[1] - 1)] for ev in self.events])
        return np.diff(self.stamps, axis=1) * 1e3


def time_collective(
    step, n_sets: int, warmup: int, iters: int, phases: int, device, group=None, per_rank: bool = False
) -> np.ndarray:
    """Time ``step(set_index, mark)`` -> float64 [iters, phases] ms, the max over ranks per iteration
    (``per_rank``: every rank's own times, [N, iters, phases], gathered instead of reduced).

    ``step`` runs one iteration on buffer set ``set_index`` and calls ``mark(k)`` after phase k
    (k = 1..phases); mark(0) is taken before it. Warm-up iterations are not timed. Ranks line up
    with a barrier before the timed loop; one all_reduce(MAX) (or all_gather) collects every
    iteration's times.
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
    if per_rank:
        every = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
        dist.all_gather(every, t, group=group)
        return torch.stack(every).cpu().numpy()
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return t.cpu().numpy()


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stats(t) -> dict:
    """median, p10, p90 of per-iteration times t[iters] (ms)."""
    p10, p50, p90 = np.percentile(np.asarray(t, dtype=np.float64), [10, 50, 90])
    return {"median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90)}


def time_direct(step, n_sets: int, iters: int, device, group=None) -> float:
    """Mean ms per iteration of ``step(set_index)`` in a bare loop, the max over ranks.

    One mark before the first and one after the last iteration, nothing in between: the dispatcher
    called directly, on the same buffers, as a user's own loop would call it.
    """
    dist.barrier(group=group)
    clock = _Clock(device, 1, 1)
    clock.mark(0, 0)
    for it in range(iters):
        step(it % n_sets)
    clock.mark(0, 1)
    t = torch.as_tensor(clock.times_ms(), dtype=torch.float64)
    if device.type == "cuda":
        t = t.to(device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return float(t.item()) / max(1, iters)


def agree(message: str, device, group=None) -> str:
    """The first non-'ok' message over ranks, prefixed with its rank, else 'ok' (every rank calls it)."""
    bad = torch.tensor([0 if message == "ok" or message.startswith("skipped") else 1], device=device)
    dist.all_reduce(bad, group=group)
    if int(bad.item()) == 0:
        return message
    msgs = [None] * dist.get_world_size(group)
    dist.all_gather_object(msgs, message, group=group)
    return next(f"rank {r}: {m}" for r, m in enumerate(msgs) if m != "ok" and not m.startswith("skipped"))


def measure_link(device, nbytes: int = 256 << 20, reps: int = 10) -> dict:
    """Per-direction peer-to-peer bandwidth: rank 0 copies ``nbytes`` from its GPU to the next one.

    Median of ``reps`` copies (after 3 warm-ups), wall clock between device syncs; broadcast to all
    ranks. -> {"GBps", "source"}.
    """
    rank = dist.get_rank()
    t = torch.zeros(1, dtype=torch.float64, device=device)
    if rank == 0:
        peer = torch.device("cuda", (device.index + 1) % torch.cuda.device_count())
        a = torch.empty(nbytes, dtype=torch.uint8, device=device).random_()
        b = torch.empty(nbytes, dtype=torch.uint8, device=peer)
        times = []
        for i in range(reps + 3):
            torch.cuda.synchronize(device), torch.cuda.synchronize(peer)
            t0 = time.perf_counter()
            b.copy_(a)
            torch.cuda.synchronize(device), torch.cuda.synchronize(peer)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        t[0] = nbytes / float(np.median(times)) / 1e9
        del a, b
    dist.broadcast(t, 0)
    return {
        "GBps": float(t.item()),
        "source": f"measured: copy of {nbytes >> 20} MiB from GPU {device.index} to the next GPU, median of {reps}",
    }


def check_memory(need: int, device, what: str) -> None:
    """Raise DodocoError when ``need`` bytes exceed 90% of the device's free memory."""
    free, desc = free_memory(device)
    if need > 0.9 * free:
        raise DodocoError(
            f"{what} need {need / 2**30:.2f} GiB per rank but {desc}: lower --hidden, "
            "--batch, --grid-sizes or --sweep-max, or use a smaller --dtype"
        )
