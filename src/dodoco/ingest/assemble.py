"""Form the rows of an imported run from a Dump: map to logical experts, sum or split ranks, drop
dense layers and empty rows, and stream the counts into ``counts.npy`` ``[S, L, E]`` uint32 (rows
recorded once: dodoco.ingest.stream, written by write_run) or a memory-mapped scratch file (rows
summed over ranks).

A row of the run is one forward pass summed over the ranks that recorded it (default), one forward
pass of one rank (``split_ranks``), or one aggregate window. The analysis treats rows as its
"sequences": a step of B sequences is B forward passes.

Shape legend: S rows, L layers as dumped, L' kept (MoE) layers, P physical experts, E logical
experts, T tokens, K experts per token.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.ingest.base import Dump, LogicalMap, Records, check_counts, check_map, id_bound, shape_error
from dodoco.ingest.assembled import Assembled, scratch_counts, window
from dodoco.ingest.stream import Block, CountsStream

_U32 = np.iinfo(np.uint32).max


def _num_experts(dump: Dump, num_experts: int | None) -> int:
    """Logical E from the option, the dump, the maps, or the largest id seen."""
    recs = dump.records
    if dump.num_experts is not None:
        if num_experts is not None and num_experts != dump.num_experts:
            raise DodocoError(
                f"--num-experts {num_experts} contradicts the {dump.num_experts} logical experts "
                f"in {recs[0].source}; drop --num-experts"
            )
        return int(dump.num_experts)
    if num_experts is not None:
        return int(num_experts)
    maps = [r.phys2log for r in recs if r.phys2log is not None]
    if maps:
        return max(
            id_bound(m, "logical expert id", f"the physical-to-logical map of {r.source}")
            for m, r in zip(maps, (r for r in recs if r.phys2log is not None))
        )
    if recs[0].counts is not None:
        return int(recs[0].row_shape()[-1])
    seen = [np.unique(t) for r in recs for t in r.tokens if np.size(t)]
    E = id_bound(np.concatenate(seen) if seen else [], "expert id", recs[0].source)
    if not E:
        raise DodocoError(f"{recs[0].source} holds no expert ids at all: nothing to import")
    dump.notes.append(f"E={E} inferred from the largest expert id; pass --num-experts if the model has more")
    return E


def _check_shapes(recs: list[Records]) -> tuple[int, ...]:
    """All blocks must agree on [L, P] (counts) or [L, K'] (tokens); returns that shape."""
    ref, ref_src = None, None
    for r in recs:
        if r.n == 0:
            continue
        shape = r.row_shape()
        if ref is None:
            ref, ref_src = shape, r.source
        elif shape != ref:
            raise shape_error("per-layer shapes", ref_src, ref, r.source, shape)
        if r.phys2log is not None:
            m_shape = np.shape(r.phys2log)
            if (m_shape != shape) if r.counts is not None else (len(m_shape) != 2 or m_shape[0] != shape[0]):
                raise shape_error(
                    "map and records",
                    f"{r.source} (physical-to-logical map)",
                    m_shape,
                    f"{r.source} (per-layer records)",
                    shape,
                )
    if ref is None:
        raise DodocoError(f"{recs[0].source if recs else 'the input'} holds no records: nothing to import")
    return ref


def _logical_maps(recs: list[Records], E: int) -> dict:
    """id(record block) -> LogicalMap; blocks with the same map share one (checked once)."""
    by_bytes: dict = {}
    maps = {}
    for r in recs:
        if r.phys2log is None:
            continue
        m = np.ascontiguousarray(r.phys2log)
        key = (m.shape, m.dtype.str, m.tobytes())
        if key not in by_bytes:
            by_bytes[key] = LogicalMap(check_map(m, E, r.source), E)
        maps[id(r)] = by_bytes[key]
    return maps


def _row_index(recs: list[Records], split_ranks: bool) -> tuple[list[np.ndarray], int]:
    """Row of each record of each block, rows sorted by (group, key[, rank]); duplicates are errors."""
    groups = {g: i for i, g in enumerate(sorted({r.group for r in recs}))}
    g = np.concatenate([np.full(r.n, groups[r.group], dtype=np.int64) for r in recs])
    k = np.concatenate([r.keys for r in recs])
    rk = np.concatenate([r.ranks for r in recs])
    block = np.concatenate([np.full(r.n, i, dtype=np.int64) for i, r in enumerate(recs)])
    full = np.stack([g, k, rk], axis=1)
    uniq_full, inv_full, cnt = np.unique(full, axis=0, return_inverse=True, return_counts=True)
    if (cnt > 1).any():
        j = int(np.flatnonzero(cnt > 1)[0])
        hits = np.flatnonzero(inv_full.reshape(-1) == j)[:2]
        a, b = recs[block[hits[0]]].source, recs[block[hits[1]]].source
        raise DodocoError(
            f"forward pass {uniq_full[j, 1]} of rank {uniq_full[j, 2]} appears twice ({a} and {b}): "
            "pass each recording's files once (separate dumps of the same rank need separate imports)"
        )
    if split_ranks:
        inv, S = inv_full.reshape(-1), uniq_full.shape[0]
    else:
        uniq, inv = np.unique(full[:, :2], axis=0, return_inverse=True)
        inv, S = inv.reshape(-1), uniq.shape[0]
    bounds = np.cumsum([0] + [r.n for r in recs])
    return [inv[bounds[i] : bounds[i + 1]] for i in range(len(recs))], S


def _where(rec: Records):
    def where(idx):
        if not idx:
            return rec.source
        parts = [f"{rec.source}: {rec.key_name} {rec.keys[idx[0]]} of rank {rec.ranks[idx[0]]}"]
        parts += [f"{name} {i}" for name, i in zip(("layer", "expert"), idx[1:])]
        return ", ".join(parts)

    return where


def _block_counts(rec: Records) -> np.ndarray:
    """[R, L, P] of a block: a zero-copy strided view when the records are consecutive in a file."""
    from dodoco.ingest.torchfile import stack

    x = rec.counts
    return np.asarray(x) if isinstance(x, np.ndarray) else stack(np.asarray(c) for c in x)


def _checked(rec: Records) -> tuple[np.ndarray, int]:
    """The block's counts validated, as uint32 (no copy for int32: same bits), and their maximum."""
    x = _block_counts(rec)
    if x.dtype == np.int32 or x.dtype == np.uint32:
        u = x.view(np.uint32)
        top = int(u.max(initial=0))  # a negative int32 shows as >= 2**31: one pass checks both
        if x.dtype == np.int32 and top >= 1 << 31:
            check_counts(x, _where(rec))
        return u, top
    check_counts(x, _where(rec))
    top = int(x.max(initial=0))
    if top > _U32:
        idx = tuple(int(i) for i in np.argwhere(x > _U32)[0])
        raise DodocoError(f"count {x[idx]} at {_where(rec)(idx)} does not fit uint32")
    return x.astype(np.uint32), top


def _check_unused_slots(rec: Records, x: np.ndarray) -> None:
    unused = np.asarray(rec.phys2log) < 0
    if unused.any() and x[..., unused].any():
        l, p = (int(i) for i in np.argwhere(unused & (x.reshape(-1, *unused.shape) > 0).any(axis=0))[0])
        raise DodocoError(
            f"{rec.source}: physical expert {p} of layer {l} is unused in the map (-1) but has "
            "routed tokens; the map does not belong to these counts"
        )


def _span(r_idx: np.ndarray):
    """A slice when r_idx is a contiguous ascending range (cheap writes), else the index array."""
    if r_idx.size and r_idx[-1] - r_idx[0] == r_idx.size - 1 and np.all(np.diff(r_idx) == 1):
        return slice(int(r_idx[0]), int(r_idx[-1]) + 1)
    return r_idx


def _add_rows(acc: np.ndarray, r_idx: np.ndarray, y: np.ndarray) -> None:
    """acc[r_idx] += y (uint32), several records of one row summed first."""
    order = np.argsort(r_idx, kind="stable")
    r_sorted = r_idx[order]
    starts = np.r_[0, np.flatnonzero(np.diff(r_sorted)) + 1]
    if starts.size < r_sorted.size:  # several ranks of one pass in the same block
        y = np.add.reduceat(y[order], starts, axis=0, dtype=np.uint32)
        r_sorted = r_sorted[starts]
    elif not np.array_equal(order, np.arange(order.size)):
        y = y[order]
    acc[_span(r_sorted)] += y


def _write_rows(out: np.ndarray, where, y: np.ndarray) -> None:
    """out[where] = y; a contiguous row range of a memory-mapped file is written with pwrite, which
    skips the page faults and zero-filling of writing through a fresh map."""
    if not (isinstance(where, slice) and isinstance(out, np.memmap) and out.flags.c_contiguous):
        out[where] = y
        return
    data = np.ascontiguousarray(y, dtype=np.uint32)
    view, pos = memoryview(data).cast("B"), int(out.offset) + where.start * out.strides[0]
    fd = os.open(out.filename, os.O_WRONLY)
    try:
        while view.nbytes:
            n = os.pwrite(fd, view, pos)
            view, pos = view[n:], pos + n
    finally:
        os.close(fd)


def _same_map(recs: list[Records]) -> bool:
    maps = [r.phys2log for r in recs]
    if all(m is None for m in maps):
        return True
    first = maps[0]
    return all(m is not None and np.shape(m) == np.shape(first) and np.array_equal(m, first) for m in maps)


def _fill_counts(recs, rows, out, E, maps, scratch: Path) -> np.ndarray:
    """Write the logical counts of every block into out[S, L, E] (uint32); returns the assignments
    per row and layer, int64 [S, L].

    Rows recorded once are mapped and written directly; rows summed over several records (ranks)
    are accumulated in physical space and mapped once at the end when all blocks share one map.
    """
    S = out.shape[0]
    overlap = np.bincount(np.concatenate(rows), minlength=S).max(initial=0) > 1
    first = next(r for r in recs if r.n)
    lm = maps.get(id(first))
    physical = overlap and _same_map(recs) and lm is not None and not lm.identity
    acc = out
    if physical:
        acc = out if lm.P == E else scratch_counts(scratch, "counts.physical.npy", (S, out.shape[1], lm.P))
    bound, buf, row_layer = 0, None, None if overlap else np.zeros(out.shape[:2], dtype=np.int64)
    for rec, r_idx in zip(recs, rows):
        if rec.n == 0:
            continue
        x, top = _checked(rec)
        if rec.phys2log is not None:
            _check_unused_slots(rec, x)
        bound += top if overlap else 0
        if bound > _U32:
            raise DodocoError(
                f"counts in {rec.source} may overflow uint32 when summed over ranks: import fewer files per run"
            )
        if not (physical or rec.phys2log is None or maps[id(rec)].identity):
            if buf is None or buf.shape != x.shape[:2] + (E,):
                buf = np.empty(x.shape[:2] + (E,), dtype=np.uint32)
            y = maps[id(rec)](x, out=buf)
        else:
            y = x
        if overlap:
            _add_rows(acc, r_idx, y)
        else:  # every row written once: its per-layer sums come from this block, no re-read later
            row_layer[r_idx] = x.sum(axis=2, dtype=np.int64)
            order = np.argsort(r_idx, kind="stable")
            _write_rows(out, _span(r_idx[order]), y if np.array_equal(order, np.arange(order.size)) else y[order])
    if physical:
        step = max(1, (1 << 26) // max(1, out.shape[1] * lm.P * 4))
        for i in range(0, S, step):
            out[i : i + step] = lm(np.asarray(acc[i : i + step]))
    return _row_layer(out) if overlap else row_layer


def _stream_plan(recs, rows, S: int, L: int, maps):
    """Pass 1 of the streaming path (dodoco.ingest.stream): validate every block and sum its rows per
    layer -> (first row of each block, [(x, record order, map)] by first row, row_layer int64 [S, L]);
    None when some row is summed over several records or a block's rows are not one contiguous range
    (the memory-mapped path handles those)."""
    if np.bincount(np.concatenate(rows), minlength=S).max(initial=0) > 1:
        return None
    spans = []
    for rec, r_idx in zip(recs, rows):
        order = np.argsort(r_idx, kind="stable")
        if r_idx[order[-1]] - r_idx[order[0]] != order.size - 1:
            return None
        spans.append(int(r_idx[order[0]]))
    row_layer = np.zeros((S, L), dtype=np.int64)
    blocks = []
    for rec, start, r_idx in zip(recs, spans, rows):  # validated in input order: the first bad file is named
        x, _ = _checked(rec)
        if rec.phys2log is not None:
            _check_unused_slots(rec, x)
        order = np.argsort(r_idx, kind="stable")
        row_layer[start : start + order.size] = x.sum(axis=2, dtype=np.int64)[order]
        lm = maps.get(id(rec))
        blocks.append((x, order, None if lm is None or lm.identity else lm))
    by_start = np.argsort(spans, kind="stable")
    return [spans[i] for i in by_start], [blocks[i] for i in by_start], row_layer


def _row_layer(out: np.ndarray) -> np.ndarray:
    """Assignments per row and layer, int64 [S, L], read in chunks (out may be a large memory map)."""
    tot = np.empty(out.shape[:2], dtype=np.int64)
    step = max(1, (1 << 26) // max(1, out.shape[1] * out.shape[2] * 4))
    for i in range(0, out.shape[0], step):
        tot[i : i + step] = out[i : i + step].sum(axis=2, dtype=np.int64)
    return tot


def _compact(out: np.ndarray, rows: np.ndarray, layers: list[int], scratch: Path) -> np.ndarray:
    """out[rows][:, layers] into a new scratch file, in chunks (out may be larger than memory)."""
    dst = scratch_counts(scratch, "counts.compact.npy", (rows.size, len(layers), out.shape[2]))
    step = max(1, (1 << 27) // max(1, out.shape[1] * out.shape[2] * 4))
    for i in range(0, rows.size, step):
        dst[i : i + step] = out[rows[i : i + step]][:, layers]
    return dst


def assemble(
    dump: Dump,
    scratch: Path,
    *,
    split_ranks: bool = False,
    num_experts: int | None = None,
    top_k: int | None = None,
    as_window: bool = False,
) -> Assembled:
    """Rows of the run from the dump's records (see the module docstring); files go to ``scratch``."""
    recs = [r for r in dump.records if r.n]
    if not recs:
        raise DodocoError(f"no records to import in {dump.records[0].source if dump.records else 'the input'}")
    E = _num_experts(dump, num_experts)
    shape = _check_shapes(recs)
    L = shape[0]
    maps = _logical_maps(recs, E)
    if recs[0].counts is not None and not maps and shape[1] != E:
        raise DodocoError(f"{recs[0].source} has {shape[1]} experts per layer but --num-experts is {E}")
    rows, S = _row_index(recs, split_ranks)
    if recs[0].tokens is not None:
        from dodoco.ingest.assemble_tokens import assemble_tokens

        return assemble_tokens(recs, rows, S, L, E, maps, top_k or dump.top_k, as_window, scratch)
    plan = None if as_window else _stream_plan(recs, rows, S, L, maps)
    if plan is None:
        out = scratch_counts(scratch, "counts.npy", (S, L, E))
        row_layer = _fill_counts(recs, rows, out, E, maps, scratch)
    else:
        starts, blocks, row_layer = plan
    kept = np.flatnonzero(row_layer.sum(axis=0) > 0).tolist()
    if not kept:
        raise DodocoError(f"every layer of {recs[0].source} has zero routed tokens: nothing to import")
    keep_mask = row_layer[:, kept].sum(axis=1) > 0
    keep_rows = np.flatnonzero(keep_mask)
    if plan is not None:
        out = CountsStream(
            [Block(x, order[keep_mask[s : s + order.size]], lm) for s, (x, order, lm) in zip(starts, blocks)], kept, E
        )
    elif len(kept) < L or keep_rows.size < S:
        out = _compact(out, keep_rows, kept, scratch)
    K = top_k or dump.top_k
    busiest = row_layer[keep_rows][:, kept].max(axis=1)  # assignments of the busiest MoE layer per row
    res = Assembled(
        out, busiest // K if K else busiest, kept, [l for l in range(L) if l not in kept], S - keep_rows.size, E, K
    )
    if K is None:
        res.notes.append("top-k unknown (pass --top-k): seq_tokens.npy holds assignments, not tokens")
    return window(res, scratch) if as_window else res
