"""``nvshmem`` / ``nvshmem-1d``: PyTorch symmetric-memory all-to-all with splits on the device.

``nvshmem`` is torchtitan's expert-parallel path: ``torch.ops.symm_mem.all_to_all_vdev_2d`` sends
rows sorted by expert and delivers them expert-major (for each local expert, every source's rows),
each expert's block aligned to ``ALIGN`` rows; the combine is ``all_to_all_vdev_2d_offset`` with the
dispatch's output splits and offsets. ``nvshmem-1d`` is ``all_to_all_vdev`` both ways (source-major,
like all_to_all_single). Split sizes live in symmetric device tensors and are exchanged by the
kernels themselves: no host sync.

Buffers come from one symmetric pool per process, made once for all cases of the run (the largest
case's bytes, in ``sets`` sets), so no case allocates symmetric memory. The NVSHMEM heap is sized
from that pool: ``NVSHMEM_SYMMETRIC_SIZE`` is set before NVSHMEM starts, unless the user set it, in
which case a heap too small for the cases is a one-line error naming the size needed.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import torch
import torch.distributed as dist

from dodoco.errors import DodocoError
from dodoco.replay.dispatchers.base import Dispatcher, RankData, equal_slots

__all__ = ["ALIGN", "NvshmemAllToAll2D", "NvshmemAllToAllV", "parse_size"]

ALIGN = 8  # major_align of all_to_all_vdev_2d: torchtitan's token-group alignment for bf16
HEAP_ENV = "NVSHMEM_SYMMETRIC_SIZE"
_POOL: dict = {}


def parse_size(text: str) -> int:
    """'8G', '512M', '1024' -> bytes (powers of 1024), as NVSHMEM reads its size variables."""
    t = str(text).strip().upper().rstrip("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise DodocoError(f"{HEAP_ENV}={text!r} is not a size such as 8G or 512M: fix or unset it") from None


def _capacity(items) -> tuple[int, int]:
    """(send bytes, receive bytes incl. alignment padding) of the largest case, over (case, cfg) items."""
    send = recv = 0
    for c, cfg in items:
        s, rb = np.asarray(c.splits), cfg.row_bytes
        send = max(send, int(s.sum(1).max()) * rb)
        recv = max(recv, (int(s.sum(0).max()) + int(np.max(c.slots)) * ALIGN) * rb)
    return send, recv


class _Pool:
    """Symmetric byte buffers shared by the nvshmem dispatchers: sets of (inp, out, back), splits tensors.

    A case uses the first rows of each buffer, viewed as [rows, H] of its dtype (prefix views start
    where the allocation starts, at the same offset on every rank, as the kernels require).
    """

    def __init__(self, ctx, items, sets: int):
        import torch.distributed._symmetric_memory as symm

        self.symm, self.ctx = symm, ctx
        send, recv = _capacity(items)
        self._size_heap(sets * (2 * send + recv) + (64 << 20))
        if hasattr(symm, "set_backend"):
            symm.set_backend("NVSHMEM")
        self.group_name = dist.group.WORLD.group_name
        if hasattr(symm, "enable_symm_mem_for_group"):  # needed before torch 2.11, a no-op (deprecated) since
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                symm.enable_symm_mem_for_group(self.group_name)
        self.sets = [tuple(self._alloc((n,), torch.uint8) for n in (send, recv, send)) for _ in range(sets)]
        self.splits: dict = {}

    def _size_heap(self, need: int) -> None:
        user = os.environ.get(HEAP_ENV)
        if user is None:
            os.environ[HEAP_ENV] = str(int(math.ceil(need * 1.1 / (1 << 20)))) + "M"
        elif parse_size(user) < need:
            raise DodocoError(
                f"the nvshmem dispatchers need {need / 2**30:.2f} GiB of symmetric heap for these "
                f"cases but {HEAP_ENV}={user}: raise {HEAP_ENV} to at least "
                f"{math.ceil(need / 2**30)}G (or unset it: dodoco sizes it)"
            )

    def _alloc(self, shape, dtype):
        t = self.symm.empty(shape, dtype=dtype, device=self.ctx.device)
        self.symm.rendezvous(t, group=self.group_name)
        return t

    def rows(self, k: int, which: int, n: int, H: int, dtype) -> torch.Tensor:
        """Buffer ``which`` (0 inp, 1 out, 2 back) of set k as [n, H] rows of dtype (a prefix view)."""
        esize = torch.empty((), dtype=dtype).element_size()
        return self.sets[k][which][: n * H * esize].view(dtype).view(n, H)

    def split_tensors(self, n: int, k: int):
        """(in_splits [n], out_splits_offsets [2, n], back_splits [n], back_splits_offsets [2, n]) of set k."""
        key = (n, k)
        if key not in self.splits:
            i64 = torch.int64
            self.splits[key] = (
                self._alloc((n,), i64),
                self._alloc((2, n), i64),
                self._alloc((n,), i64),
                self._alloc((2, n), i64),
            )
        return self.splits[key]


def pool(ctx, items=None, sets: int = 2) -> _Pool:
    """The process's one symmetric pool, made by the first ``setup`` (sized for every (case, cfg) item)."""
    if "pool" not in _POOL:
        _POOL["pool"] = _Pool(ctx, items, sets)
    return _POOL["pool"]


class NvshmemAllToAll2D(Dispatcher):
    name = "nvshmem"
    summary = "PyTorch symm_mem all_to_all_vdev_2d / _2d_offset: device-side splits, no host sync (torchtitan)"
    install = "torch >= 2.9 built with NVSHMEM, and the nvidia-nvshmem-cu12 or -cu13 package"
    order = "expert-major"
    stages = ("all_to_all_vdev_2d", "all_to_all_vdev_2d_offset")
    n_dispatch = 1
    needs_cuda = True
    expert_align = ALIGN
    op = "all_to_all_vdev_2d"

    @classmethod
    def probe(cls, backend: str, N: int) -> str | None:
        why = super().probe(backend, N)
        if why or not torch.cuda.is_available():
            return why or "needs CUDA GPUs"
        if N < 2:
            return (
                "needs at least 2 ranks: PyTorch's symmetric-memory rendezvous refuses a group of one "
                '("Expected global_ranks.size() > 1", torch 2.11)'
            )
        try:
            import torch.distributed._symmetric_memory as symm

            getattr(torch.ops.symm_mem, cls.op)
        except (ImportError, AttributeError, RuntimeError) as exc:
            return f"torch.ops.symm_mem.{cls.op} is not in this torch {torch.__version__} ({exc}): {cls.install}"
        if hasattr(symm, "is_nvshmem_available") and not symm.is_nvshmem_available():
            return f"torch {torch.__version__} finds no NVSHMEM library here: {cls.install}"
        return None

    @classmethod
    def limits(cls, case) -> None:
        equal_slots(case, f"{cls.name} ({cls.op})")

    def setup(self, items, sets: int) -> None:
        pool(self.ctx, items, sets)

    def prepare(self, data: RankData, sets: int):
        p = pool(self.ctx)
        n = data.E if self.op == "all_to_all_vdev_2d" else data.N
        counts = data.per_expert if n == data.E else torch.as_tensor(data.splits[data.rank], device=data.device)
        rows = data.x.index_select(0, data.send_tok)
        s = data.splits
        n_out = int(s.sum(0).max()) + int(data.slots.max()) * ALIGN  # the same on every rank
        n_in = int(s.sum(1).max())
        use = []
        for k in range(min(sets, len(p.sets))):
            inp = p.rows(k, 0, n_in, data.H, data.dtype)
            inp[: rows.shape[0]].copy_(rows)
            sp = p.split_tensors(n, k)
            sp[0].copy_(counts)
            use.append((inp, p.rows(k, 1, n_out, data.H, data.dtype), p.rows(k, 2, n_in, data.H, data.dtype), *sp))
        return {"sets": use, "rows": rows.shape[0], "last": 0, "group": p.group_name}

    def step(self, state, k: int, mark) -> None:
        inp, out, back, in_sp, out_so, _, back_so = state["sets"][k % len(state["sets"])]
        torch.ops.symm_mem.all_to_all_vdev_2d(inp, out, in_sp, out_so, state["group"], major_align=ALIGN)
        mark(1)
        torch.ops.symm_mem.all_to_all_vdev_2d_offset(out, back, out_so, back_so, state["group"])
        mark(2)
        state["last"] = k % len(state["sets"])

    def layer_rows(self, state, k: int) -> torch.Tensor:
        return state["sets"][k % len(state["sets"])][1]

    def received(self, state) -> torch.Tensor:
        _, out, _, _, out_so, _, _ = state["sets"][state["last"]]
        splits, offsets = out_so[0].tolist(), out_so[1].tolist()
        idx = [torch.arange(o, o + s, device=out.device) for s, o in zip(splits, offsets) if s > 0]
        return out.index_select(0, torch.cat(idx)) if idx else out[:0]

    def combined(self, state, data: RankData) -> str:
        inp, _, back = state["sets"][state["last"]][:3]
        n = state["rows"]
        if not torch.equal(back[:n].view(torch.uint8), inp[:n].view(torch.uint8)):
            return f"combine ({self.stages[-1]}): the rows that came back differ from the rows sent"
        return "ok"


class NvshmemAllToAllV(NvshmemAllToAll2D):
    name = "nvshmem-1d"
    summary = "PyTorch symm_mem all_to_all_vdev both ways: device-side splits, source-major"
    order = "rank-major"
    stages = ("all_to_all_vdev", "all_to_all_vdev back")
    expert_align = 1
    op = "all_to_all_vdev"

    @classmethod
    def limits(cls, case) -> None:
        """all_to_all_vdev takes any split sizes."""

    def step(self, state, k: int, mark) -> None:
        inp, out, back, in_sp, out_so, back_sp, back_so = state["sets"][k % len(state["sets"])]
        torch.ops.symm_mem.all_to_all_vdev(inp, out, in_sp, out_so, state["group"])
        mark(1)
        back_sp.copy_(out_so[0])
        torch.ops.symm_mem.all_to_all_vdev(out, back, back_sp, back_so, state["group"])
        mark(2)
        state["last"] = k % len(state["sets"])

    def received(self, state) -> torch.Tensor:
        _, out, _, _, out_so, _, _ = state["sets"][state["last"]]
        return out[: int(out_so[0].sum())]
