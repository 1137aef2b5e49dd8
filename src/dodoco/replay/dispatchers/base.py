"""The dispatcher interface, each rank's data of a case, and the coded rows the check decodes.

A dispatcher fills ``Dispatcher``: ``prepare`` builds its buffers for one case on this rank (rotating
sets), ``step`` runs one dispatch + combine on a set and calls ``mark(k)`` after stage k,
``received`` returns the rows the last dispatch delivered (in ``order``), ``combined`` checks what
the last combine returned. The harness (``dodoco.replay.runner``) does the rest: the check, the
timing, the max over ranks, the overhead against a bare loop of ``step``.

Rows encode (source rank, token): columns 0..6 hold the base-16 digits of src * 2**20 + token, the
others (token + column) mod 7. Every value is a small integer, exact in bf16/fp16/fp32, and a sum
of up to 17 copies stays exact, so combines that add the K copies of a token (Megatron) can be
checked exactly too.

Shape legend: T tokens of this rank, K experts per token, N EP ranks, H hidden size.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from dodoco.errors import DodocoError

__all__ = [
    "CODE_COLS",
    "Dispatcher",
    "RankData",
    "decode_rows",
    "expected_rows",
    "local_assignments",
    "make_rows",
    "noop",
]

CODE_COLS = 7  # base-16 digits of src * 2**20 + token
_TOK_BITS = 20


def noop(k: int) -> None:
    """A mark that records nothing (warm-up, the check, the bare loop)."""


def make_rows(src: torch.Tensor, tok: torch.Tensor, H: int, dtype) -> torch.Tensor:
    """Coded rows [n, H] of (src, tok) pairs (int tensors [n]); H >= CODE_COLS + 1."""
    code = src.to(torch.int64) * (1 << _TOK_BITS) + tok.to(torch.int64)
    col = torch.arange(H - CODE_COLS, device=tok.device, dtype=torch.int32)
    rows = torch.empty((code.shape[0], H), dtype=dtype, device=tok.device)
    rows[:, CODE_COLS:] = ((tok.to(torch.int32)[:, None] + col[None, :]) % 7).to(dtype)
    for d in range(CODE_COLS):
        rows[:, d] = ((code >> (4 * d)) & 15).to(dtype)
    return rows


def decode_rows(rows: torch.Tensor) -> torch.Tensor:
    """Codes src * 2**20 + token of coded rows [n, H] -> int64 [n]."""
    digits = rows[:, :CODE_COLS].to(torch.int64)
    weights = torch.tensor([1 << (4 * d) for d in range(CODE_COLS)], dtype=torch.int64, device=rows.device)
    return (digits * weights).sum(dim=1)


def local_assignments(topk, slots, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (source, physical expert, token) assignment to an expert of ``rank`` -> three int64 [n],
    in source then token order. topk: per source i, int [T_i, K] physical experts; slots[N]."""
    base = np.concatenate([[0], np.cumsum(slots)])
    lo, hi = base[rank], base[rank + 1]
    src, exp, tok = [], [], []
    for i, t in enumerate(topk):
        t = np.asarray(t, dtype=np.int64)
        r, c = np.nonzero((t >= lo) & (t < hi))
        src.append(np.full(r.shape[0], i)), exp.append(t[r, c]), tok.append(r)
    return tuple(np.concatenate(a).astype(np.int64) if a else np.zeros(0, dtype=np.int64) for a in (src, exp, tok))


def expected_rows(topk, slots, rank: int, order: str, dedup: bool = False) -> np.ndarray:
    """Codes of the rows ``rank`` must receive -> int64 [n], in the dispatcher's delivery order.

    topk: per source i, int [T_i, K] physical experts; slots[N]: physical experts per rank.
    order "rank-major": by (source, expert, token); "expert-major": by (expert, source, token);
    "rank-token": by (source, token) with one row per token that has any expert here (dedup=True).
    """
    src, exp, tok = local_assignments(topk, slots, rank)
    if dedup or order == "rank-token":
        pairs = np.unique(src * (1 << _TOK_BITS) + tok)
        return pairs
    keys = (tok, exp, src) if order == "rank-major" else (tok, src, exp)
    idx = np.lexsort(keys)
    return (src * (1 << _TOK_BITS) + tok)[idx]


class RankData:
    """One case on one rank: coded token rows x [T, H], top-k [T, K] and the send order.

    send_tok: int64 [T*K] token of each send row, rows sorted by (physical expert, token), the
    order every per-expert-copy dispatcher sends in; per_expert: int64 [E] rows to each expert.
    """

    def __init__(self, case, rank: int, H: int, dtype, device):
        self.case, self.rank, self.H, self.dtype, self.device = case, rank, int(H), dtype, device
        self.N, self.K, self.E = case.N, case.K, case.E
        self.slots = np.asarray(case.slots, dtype=np.int64)
        self.topk = torch.as_tensor(np.asarray(case.topk[rank], dtype=np.int64), device=device)
        self.T = int(self.topk.shape[0])
        tok = torch.arange(self.T, device=device)
        self.coded = self.H > CODE_COLS and self.T < (1 << _TOK_BITS) and self.N < 256
        self.x = (
            make_rows(torch.full_like(tok, rank), tok, self.H, dtype)
            if self.coded
            else torch.randn(self.T, self.H, device=device).to(dtype)
        )
        key = self.topk * max(self.T, 1) + tok[:, None]
        self.send_tok = (key.reshape(-1).sort().values % max(self.T, 1)) if self.T else tok[:0]
        self.per_expert = torch.bincount(self.topk.reshape(-1), minlength=self.E).to(torch.int64)
        self.splits = np.asarray(case.splits, dtype=np.int64)

    def expected(self, order: str, dedup: bool = False) -> torch.Tensor:
        return torch.as_tensor(expected_rows(self.case.topk, self.slots, self.rank, order, dedup), device=self.device)

    def compare(self, rows: torch.Tensor, order: str, what: str = "dispatch", dedup: bool = False) -> str:
        """'ok', or one line on the first received row that is missing, misplaced or altered."""
        if not self.coded:
            return "skipped (rows too narrow or too many tokens to code)"
        want = self.expected(order, dedup)
        if rows.shape[0] != want.shape[0]:
            return f"{what}: {rows.shape[0]} rows arrived, {want.shape[0]} expected"
        got = decode_rows(rows)
        bad = got != want
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            g, w = int(got[i]), int(want[i])
            return (
                f"{what}: {int(bad.sum())} rows out of place; first at row {i}: (source {g >> _TOK_BITS}, "
                f"token {g & ((1 << _TOK_BITS) - 1)}) instead of (source {w >> _TOK_BITS}, "
                f"token {w & ((1 << _TOK_BITS) - 1)})"
            )
        if not torch.equal(rows, make_rows(want >> _TOK_BITS, want & ((1 << _TOK_BITS) - 1), self.H, self.dtype)):
            return f"{what}: rows arrived in place but their contents differ from what the source sent"
        return "ok"


class Dispatcher:
    """One dispatcher on one rank (see the module docstring). Subclasses set the class attributes."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    install: ClassVar[str] = ""  # what to install when it is missing
    bytes: ClassVar[str] = "copies"  # "copies" (per expert copy), "dedup" (per destination rank), "allgather"
    order: ClassVar[str] = "rank-major"  # delivery order of received rows
    stages: ClassVar[tuple[str, ...]] = ()
    n_dispatch: ClassVar[int] = 1  # the first n_dispatch stages are the dispatch, the rest the combine
    needs_cuda: ClassVar[bool] = False
    expert_align: ClassVar[int] = 1  # expert-major delivery: each local expert's block starts at a multiple of this

    def __init__(self, ctx):
        self.ctx = ctx  # rank, N, device, group, cfg, l2

    @classmethod
    def probe(cls, backend: str, N: int) -> str | None:
        """None when this dispatcher can run here with ``backend`` on N ranks, else why not (one line)."""
        if cls.needs_cuda and backend != "nccl":
            return f"needs CUDA GPUs and the NCCL backend (this run uses {backend})"
        return None

    @classmethod
    def limits(cls, case) -> None:
        """Raise DodocoError when the case's routing is beyond what this dispatcher expresses."""

    @classmethod
    def need_bytes(cls, case, rank: int, sets: int, row_bytes: int) -> int:
        """Bytes this dispatcher allocates for the case on ``rank`` (rough, for the memory check)."""
        s = np.asarray(case.splits)
        return int(sets * (2 * s[rank].sum() + s[:, rank].sum()) * row_bytes)

    def setup(self, cases, sets: int) -> None:
        """Once per run, on every rank, before the first case (collective allocations go here)."""

    def prepare(self, data: RankData, sets: int):
        raise NotImplementedError

    def step(self, state, k: int, mark) -> None:
        raise NotImplementedError

    def received(self, state) -> torch.Tensor:
        raise NotImplementedError

    def combined(self, state, data: RankData) -> str:
        """'ok' or what is wrong with what the last combine returned."""
        return "ok"

    def release(self, state) -> None:
        """Free what ``prepare`` allocated (default: nothing beyond Python references)."""

    def layer_rows(self, state, k: int) -> torch.Tensor:
        """The rows set k's dispatch delivered, in ``order``, where the combine of the same ``step`` will
        read them back; valid from ``mark(n_dispatch)`` on (the whole-layer replay runs the experts there,
        ``dodoco.replay.layer``)."""
        raise NotImplementedError

    @classmethod
    def layer_probe(cls) -> str | None:
        """None when the whole-layer replay can run this dispatcher, else why not (one line)."""
        if cls.layer_rows is Dispatcher.layer_rows:
            return f"the whole-layer replay (--layer) does not drive {cls.name} (it exposes no received rows mid-step)"
        return None


def equal_slots(case, name: str) -> int:
    """Physical experts per rank of a case whose ranks all hold the same number; else DodocoError."""
    slots = np.asarray(case.slots)
    if slots.min() != slots.max():
        raise DodocoError(
            f"{name} needs the same number of experts on every rank, but this placement gives "
            f"{slots.tolist()} (E={int(slots.sum())}, N={slots.shape[0]}): use a placement or N "
            "that divides the experts evenly"
        )
    return int(slots[0])
