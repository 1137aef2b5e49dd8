"""What every importer produces, and the checks they share.

An importer turns engine files into a ``Dump``: a list of ``Records`` (one block per file, or per
rank of a file), each holding per-row expert counts and optionally per-token top-k ids, in the
engine's physical expert space with its physical -> logical map, or already logical. ``assemble``
(dodoco.ingest.assemble) then forms the rows of the run: a row is one forward pass (ranks summed),
one forward pass of one rank (``split_ranks``), or one aggregate window.

Shape legend: R records (rows of one block), L layers as dumped (dense layers included), P physical
experts, E logical experts, T tokens, K experts per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from dodoco.config import check_allocation
from dodoco.errors import DodocoError

GRANULARITIES = ("window", "pass", "token")


@dataclass
class Records:
    """One block of rows from one file.

    source: the file (for messages). group: rows of different groups never add up (e.g. two
    separate stat dumps); rows of the same group and key from different ranks do (one forward pass
    recorded by each rank). keys: int64 [R], the pass id of each row within its group. ranks:
    int64 [R]. counts: [R, L, P] array, or a list of R arrays [L, P] (lazy views are fine), or None
    when ``tokens`` is given. tokens: list of R arrays [T_r, L, K'] of expert ids (-1 = no expert),
    or None. phys2log: int [L, P] map from physical to logical expert (-1 = unused slot), or None
    when ids are logical already.
    """

    source: str
    group: str
    keys: np.ndarray
    ranks: np.ndarray
    counts: object = None
    tokens: list | None = None
    phys2log: np.ndarray | None = None
    key_name: str = "forward pass"

    def __post_init__(self):
        self.keys = np.asarray(self.keys, dtype=np.int64).reshape(-1)
        self.ranks = np.broadcast_to(np.asarray(self.ranks, dtype=np.int64), self.keys.shape).copy()
        assert (self.counts is None) != (self.tokens is None), "exactly one of counts / tokens"

    @property
    def n(self) -> int:
        return int(self.keys.shape[0])

    def row_shape(self) -> tuple[int, ...]:
        """[L, P] of the counts, or [L, K'] of the token ids (the first row)."""
        if self.tokens is not None:
            return tuple(self.tokens[0].shape[1:]) if self.tokens else ()
        first = self.counts[0] if len(self.counts) else None
        return tuple(np.shape(first)) if first is not None else ()


@dataclass
class Dump:
    """Everything one importer read: the records plus what the files say about themselves."""

    format: str
    engine: str
    mode: str
    granularity: str
    records: list[Records]
    engine_version: str | None = None
    num_experts: int | None = None  # logical E when the files state it
    top_k: int | None = None
    model_id: str | None = None
    layer_ids: list[int] | None = None  # model layer id of each dumped layer, when known
    rows: str = ""  # what one row is, in words
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # format-specific provenance for the manifest

    def __post_init__(self):
        assert self.granularity in GRANULARITIES, self.granularity


def check_size(shape, itemsize: int, source) -> None:
    """Before an array of ``shape`` is made from sizes read in ``source``: refuse it in one line when it
    would take more than half of this machine's memory (dodoco.config.check_allocation)."""
    n = 1
    for d in shape:
        n *= int(d)
    check_allocation(
        n * itemsize,
        f"an array {[int(d) for d in shape]} of the counts in {source}",
        "a damaged file, a wrong --num-experts, or too many files at once (import fewer)",
    )


def check_counts(x: np.ndarray, where, what: str = "count") -> None:
    """Raise DodocoError unless x holds non-negative integers (the first offending index named).

    ``where(index_tuple) -> str`` names an index in the user's terms (file, pass, layer, expert);
    ``what`` names the values ("count", "layer id", ...).
    """
    x = np.asarray(x)
    if x.dtype.kind == "b":
        raise DodocoError(f"{where(())} holds booleans, expected integer {what}s")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x) | (x != np.round(x))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DodocoError(f"non-integer {what} {x[idx].item()} at {where(idx)}: {what}s must be whole numbers")
    elif x.dtype.kind not in "iu":
        raise DodocoError(f"{where(())} holds {x.dtype} values, expected integer {what}s")
    if x.dtype.kind != "u" and x.size and x.min() < 0:
        idx = tuple(int(i) for i in np.argwhere(x < 0)[0])
        raise DodocoError(f"negative {what} {x[idx].item()} at {where(idx)}: {what}s must be >= 0")


def check_map(phys2log: np.ndarray, E: int, source: str) -> np.ndarray:
    """Validate a physical -> logical map [L, P] for E logical experts; return it as int64.

    Every logical expert 0..E-1 must have at least one physical replica in every layer; entries
    must lie in [-1, E) (-1 = an unused physical slot).
    """
    m = np.asarray(phys2log)
    if m.ndim != 2 or m.dtype.kind not in "iu":
        raise DodocoError(
            f"physical-to-logical map in {source} must be an integer array [layers, physical "
            f"experts], got {m.dtype} shape {list(m.shape)}"
        )
    m = m.astype(np.int64)
    if m.size and (m.min() < -1 or m.max() >= E):
        l, p = (int(i) for i in np.argwhere((m < -1) | (m >= E))[0])
        raise DodocoError(
            f"physical-to-logical map in {source} maps physical expert {p} of layer {l} to "
            f"{m[l, p]}, outside 0..{E - 1} (E={E} logical experts): pass --num-experts if E "
            "is larger"
        )
    covered = np.zeros((m.shape[0], E + 1), dtype=bool)
    covered[np.arange(m.shape[0])[:, None], m] = True  # -1 lands in the last column
    missing = ~covered[:, :E]
    if missing.any():
        l = int(np.argwhere(missing.any(axis=1))[0][0])
        gone = np.flatnonzero(missing[l]).tolist()
        raise DodocoError(
            f"physical-to-logical map in {source} does not cover every expert: layer {l} has no "
            f"physical replica of logical expert(s) {gone[:8]}{' ...' if len(gone) > 8 else ''} "
            f"(E={E}); pass --num-experts if E is smaller, or the map of the same recording"
        )
    return m


class LogicalMap:
    """Fast physical -> logical reduction for one validated map [L, P]: a gather of one replica of
    each logical expert, then one vectorised add per further replica index."""

    def __init__(self, phys2log: np.ndarray, E: int):
        m = np.asarray(phys2log, dtype=np.int64)
        self.map, self.L, self.P, self.E = m, m.shape[0], m.shape[1], int(E)
        self.identity = self.P == self.E and bool(np.all(m == np.arange(self.E)))
        layer = np.repeat(np.arange(self.L), self.P)
        phys = np.tile(np.arange(self.P), self.L)
        logical = m.reshape(-1)
        used = logical >= 0
        layer, phys, logical = layer[used], phys[used], logical[used]
        order = np.lexsort((phys, logical, layer))
        layer, phys, logical = layer[order], phys[order], logical[order]
        group = layer * self.E + logical
        start = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
        replica = np.arange(group.size) - np.repeat(start, np.diff(np.r_[start, group.size]))
        self.first = np.zeros((self.L, self.E), dtype=np.int64)
        r0 = replica == 0
        self.first[layer[r0], logical[r0]] = phys[r0]
        self.extra = [
            (layer[replica == r], logical[replica == r], phys[replica == r])
            for r in range(1, int(replica.max(initial=0)) + 1)
        ]

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Physical counts x[..., L, P] -> logical counts [..., L, E] in x's dtype (replicas summed;
        pass non-negative counts as uint32 so that sums cannot wrap below 2**32). ``out`` (same
        dtype, C-contiguous) is reused when given: large fresh arrays cost page faults."""
        x = np.asarray(x)
        if self.identity:
            return x
        lead = x.shape[:-2]
        flat = (np.arange(self.L)[:, None] * self.P + self.first).reshape(-1)
        rows = x.reshape((-1, self.L * self.P))
        if out is None:
            out = np.empty(lead + (self.L, self.E), dtype=x.dtype)
        dst = out.reshape((-1, self.L * self.E))
        for i in range(rows.shape[0]):  # row by row: a gather of one contiguous row at a time
            np.take(rows[i], flat, out=dst[i])
        for l, e, p in self.extra:  # (l, e) pairs are unique within one replica index
            out[..., l, e] += x[..., l, p]
        return out

    def ids(self, topk: np.ndarray) -> np.ndarray:
        """Physical expert ids topk[T, L, K] (-1 = none) -> logical ids int64 [T, L, K] (-1 kept)."""
        t = np.asarray(topk, dtype=np.int64)
        ext = np.concatenate([self.map, np.full((self.L, 1), -1, dtype=np.int64)], axis=1)
        return ext[np.arange(self.L)[None, :, None], np.where(t < 0, self.P, t)]


def shape_error(what: str, a_src: str, a_shape: Sequence[int], b_src: str, b_shape: Sequence[int]) -> DodocoError:
    """The error for inconsistent shapes across files or ranks, naming both."""
    return DodocoError(
        f"inconsistent {what}: {a_src} has shape {list(a_shape)} but {b_src} has shape "
        f"{list(b_shape)}; import files of one recording (same model, layers and experts) together"
    )


def ints(value, what: str, source: str) -> np.ndarray:
    """A rectangular array from a list/array field of a dump (error naming the field and file otherwise)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, RecursionError, OverflowError):
        arr = np.empty(0, dtype=object)
    if arr.dtype == object:
        raise DodocoError(f"{what} in {source} is ragged or not numeric; is the file complete?")
    return arr


FREE_IDS = 1024  # ids below this never count as far beyond the others
MAX_IDS = 1 << 16  # no MoE model has more experts (or layers); a larger id is refused unless the user says so


def id_bound(ids, what: str, source: str, flag: str = "--num-experts") -> int:
    """Ids seen (any shape; -1 = none) -> the count they imply (largest + 1), refusing an id far beyond
    the others, which would size arrays by a corrupt value: an id >= FREE_IDS that is more than twice
    the next largest distinct id plus 64 (a two-row table with expert 100000000 and expert 3), or any
    id >= MAX_IDS."""
    u = np.unique(np.asarray(ids).reshape(-1))
    u = u[u >= 0]
    if not u.size:
        return 0
    top, below = int(u[-1]), int(u[-2]) if u.size > 1 else -1
    if top >= MAX_IDS or top >= FREE_IDS and top > 2 * below + 64:
        fix = f"pass {flag} {top + 1} if the model really has that many" if flag else "fix the file"
        raise DodocoError(
            f"{what} {top} in {source} is far beyond the others (next largest {below}): a corrupt value, or {fix}"
        )
    return top + 1
