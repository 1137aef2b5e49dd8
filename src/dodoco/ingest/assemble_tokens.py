"""Token-granularity imports: per-token top-k ids of each row -> counts ``[S, L', E]`` and traces.

Shape legend: S rows, L layers as dumped, L' kept (MoE) layers, E logical experts, T tokens, K
experts per token (K' id slots per token as dumped, -1 = unused).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.ingest.assembled import Assembled, scratch_counts, window
from dodoco.ingest.base import check_size


def _token_rows(recs, rows, S, E, maps):
    """Token blocks -> per-row logical ids [T_r, L, K'] (ranks in order; padding tokens kept for now)."""
    per_row: list[list] = [[] for _ in range(S)]
    for rec, r_idx in zip(recs, rows):
        limit = rec.phys2log.shape[1] if rec.phys2log is not None else E
        for i in np.lexsort((rec.ranks, r_idx)):
            t = np.asarray(rec.tokens[i])
            if t.dtype.kind not in "iu":
                raise DodocoError(f"{rec.source}: expert ids of pass {rec.keys[i]} are {t.dtype}, expected integers")
            bad = (t < -1) | (t >= limit)
            if bad.any():
                tok, l, _ = (int(v) for v in np.argwhere(bad)[0])
                raise DodocoError(
                    f"expert id {int(t[bad][0])} out of range 0..{limit - 1} at {rec.source}: pass "
                    f"{rec.keys[i]} of rank {rec.ranks[i]}, token {tok}, layer {l}; pass --num-experts, "
                    "or disable shared-expert fusion in the engine"
                )
            per_row[r_idx[i]].append(maps[id(rec)].ids(t) if rec.phys2log is not None else t.astype(np.int64))
    return [np.concatenate(p) if p else None for p in per_row]


def _compact_tokens(row_ids, kept, E, top_k):
    """Keep MoE layers, drop padding tokens, check K valid ids per token -> (tokens, seq_tokens, counts)."""
    L2 = len(kept)
    first = next((ids for ids in row_ids if ids is not None and ids.size), None)
    valid_any = None if first is None else (first[:, kept] >= 0)
    K = top_k or (int(valid_any.sum(axis=-1).max()) if valid_any is not None and valid_any.size else None)
    if not K:
        raise DodocoError("the token dump holds no expert ids in any MoE layer: nothing to import")
    dtype = np.uint8 if E <= 256 else np.uint16
    check_size((len(row_ids), L2, E), 8, "the token dump")
    tokens, seq_tokens, counts = [], [], np.zeros((len(row_ids), L2, E), dtype=np.int64)
    for s, ids in enumerate(row_ids):
        if ids is None:
            seq_tokens.append(0)
            continue
        ids = ids[:, kept]
        valid = ids >= 0
        n = valid.sum(axis=-1)  # [T, L']
        real = n.any(axis=1)
        n, ids, valid = n[real], ids[real], valid[real]
        if (n != K).any():
            t, l = (int(v) for v in np.argwhere(n != K)[0])
            raise DodocoError(
                f"row {s}: token {t} has {n[t, l]} expert ids in MoE layer {kept[l]}, expected "
                f"top-k K={K}; pass --top-k if K differs"
            )
        order = np.argsort(~valid, axis=-1, kind="stable")[..., :K]
        picked = np.take_along_axis(ids, order, axis=-1)
        tokens.append(picked.astype(dtype))
        seq_tokens.append(picked.shape[0])
        flat = (np.arange(L2)[None, :, None] * E + picked).reshape(-1)
        counts[s] = np.bincount(flat, minlength=L2 * E).reshape(L2, E)
    T = np.concatenate(tokens) if tokens else np.zeros((0, L2, K), dtype)
    return T, np.asarray(seq_tokens, dtype=np.int64), counts, K


def assemble_tokens(recs, rows, S, L, E, maps, top_k, as_window, scratch: Path) -> Assembled:
    """The Assembled run of token blocks: per-row ids, kept layers, counts and traces (see assemble)."""
    row_ids = _token_rows(recs, rows, S, E, maps)
    present = np.zeros(L, dtype=bool)
    for ids in row_ids:
        if ids is not None and ids.size:
            present |= (ids >= 0).any(axis=(0, 2))
    kept = np.flatnonzero(present).tolist()
    if not kept:
        raise DodocoError(f"every layer of {recs[0].source} has zero routed tokens: nothing to import")
    tokens, seq_tokens, counts, K = _compact_tokens(row_ids, kept, E, top_k)
    keep_rows = np.flatnonzero(seq_tokens > 0)
    out = scratch_counts(scratch, "counts.npy", (keep_rows.size, len(kept), E))
    out[:] = counts[keep_rows]
    offsets_all = np.r_[0, np.cumsum(seq_tokens)]
    res = Assembled(
        out,
        seq_tokens[keep_rows],
        kept,
        [l for l in range(L) if l not in kept],
        S - keep_rows.size,
        E,
        K,
        tokens=tokens,
        token_offsets=np.r_[0, np.cumsum(seq_tokens[keep_rows])].astype(np.int64),
    )
    assert offsets_all[-1] == tokens.shape[0]
    return window(res, scratch) if as_window else res
