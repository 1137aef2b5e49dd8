"""Megatron-Core routing logs.

Router traces (megatron/core/transformer/moe/router_trace.py, ``--moe-routing-trace-path DIR``):
one ``router_trace_rank<r>.jsonl`` per rank, one line per router call::

    {"step": 0, "stage": "pre_dispatch", "block": "decoder", "layer": 3, "rank": 0,
     "num_tokens": 128, "topk": 8, "top_indices": [[12, 45, ...], ...]}

(MTP heads add ``"mtp_idx"``; sidecar fields ``hs_*``/``logit_*`` are ignored). ``layer`` is the
index in ``decoder.layers`` of the rank's pipeline stage. In training every micro-batch calls the
router once per step, so the j-th line of (step, layer) is micro-batch j. A row of the run is one
(step, micro-batch), the tokens of all ranks concatenated in rank order (``--split-ranks``: one row
per rank). Pass one tensor-parallel rank per data-parallel group (``--ranks``): TP ranks route the
same tokens.

Tokens-per-expert logs (megatron/training/activation_logging.py, ``--save-tokens-per-expert-interval
N``): ``<save>/tokens_per_expert/rank<r>.jsonl``, one line per (iteration, block, layer)::

    {"iter": 100, "block": "decoder", "layer": 3, "tpe": [[128, 64], [96, 80]]}

``tpe`` holds, per micro-batch, the tokens each of the rank's local experts received. Local expert j
of EP rank q is global expert q * E_local + j; the EP rank of global rank r is
(r // expert_tp_size) % ep_size (Megatron's default "tp-cp-ep-dp-pp" order); expert-TP ranks other
than 0 duplicate rank 0's counts and are skipped. A row is one (iteration, micro-batch), summed over
ranks.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.ingest.base import Dump, Records, check_size, id_bound, ints, shape_error
from dodoco.ingest.config import ImportConfig
from dodoco.ingest.sniff import wrong_format

_MB = 1 << 16  # row key = step * _MB + micro-batch


def _lines(path: Path, need: str, expected: str, fmt: str):
    """Yield (line number, record) of a JSON Lines file whose records carry ``need``."""
    if not path.is_file():
        raise DodocoError(f"input file '{path}' does not exist")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                if n == 1:
                    raise wrong_format(path, fmt, expected) from None
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
                raise DodocoError(f"{path} line {n} is not valid JSON ({why}); is the file truncated?") from None
            if not isinstance(rec, dict) or need not in rec:
                raise (
                    wrong_format(path, fmt, expected)
                    if n == 1
                    else DodocoError(f"{path} line {n} has no '{need}': not a complete {expected}")
                )
            yield n, rec


def _int(rec: dict, key: str, path: Path, n: int, default=None) -> int:
    """An integer field of a record (error naming the file, line and field otherwise)."""
    value = rec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        what = "missing" if value is None else f"{value!r:.40}, not an integer"
        raise DodocoError(f"{path} line {n}: '{key}' is {what}; is the file complete?")
    return value


TRACE = "a Megatron router trace (router_trace_rank*.jsonl with top_indices)"


def _trace_rows(path: Path, ranks, skipped: dict) -> dict:
    """(rank, step, micro-batch) -> {layer: int32 [T, K]} of one trace file (decoder layers only)."""
    rows: dict = defaultdict(dict)
    seen: dict = defaultdict(int)
    for n, rec in _lines(path, "top_indices", TRACE, "megatron"):
        if rec.get("block", "decoder") != "decoder":
            skipped["mtp"] += 1
            continue
        rank, step, layer = _int(rec, "rank", path, n, 0), _int(rec, "step", path, n), _int(rec, "layer", path, n)
        if ranks is not None and rank not in ranks:
            continue
        mb = seen[(rank, step, layer)]
        seen[(rank, step, layer)] += 1
        ids = ints(rec["top_indices"], "top_indices", f"{path} line {n}")
        if ids.ndim != 2 and ids.size or ids.dtype.kind not in "iu" and ids.size:
            raise DodocoError(f"{path} line {n}: top_indices is not an integer [tokens, top-k] list")
        ids = ids.astype(np.int64)
        k = _int(rec, "topk", path, n, ids.shape[-1] if ids.ndim == 2 else 0)
        if k < 1 or ids.size % k:
            raise DodocoError(f"{path} line {n}: top_indices has {ids.size} ids, not a multiple of topk {k}")
        rows[(rank, step, mb)][layer] = ids.reshape(-1, k)
    return rows


def _trace_records(path: Path, rows: dict, layers: list[int]) -> Records:
    keys, rk, tokens = [], [], []
    ref = None
    for (rank, step, mb), by_layer in sorted(rows.items()):
        if sorted(by_layer) != layers:
            raise DodocoError(
                f"{path}: rank {rank} step {step} micro-batch {mb} records layers {sorted(by_layer)} "
                f"but other rows record {layers}; import each pipeline stage's files separately"
            )
        shapes = {l: by_layer[l].shape for l in layers}
        first = shapes[layers[0]]
        for l in layers[1:]:
            if shapes[l] != first:
                raise shape_error(
                    "token counts across layers",
                    f"{path} step {step} layer {layers[0]}",
                    first,
                    f"layer {l}",
                    shapes[l],
                )
        if ref is not None and first[1] != ref[1]:
            raise shape_error("top-k", f"{path} (earlier rows)", ref, f"step {step} rank {rank}", first)
        ref = first
        keys.append(step * _MB + mb)
        rk.append(rank)
        tokens.append(np.stack([by_layer[l] for l in layers], axis=1))  # [T, L, K]
    return Records(str(path), "", keys, rk, tokens=tokens)


def read_trace(paths, cfg: ImportConfig) -> Dump:
    """Read Megatron router traces (see the module docstring) into a token-granularity Dump."""
    skipped = {"mtp": 0}
    per_file = [(Path(p), _trace_rows(Path(p), cfg.ranks, skipped)) for p in paths]
    layers = sorted({l for _, rows in per_file for by_layer in rows.values() for l in by_layer})
    id_bound(layers, "layer id", ", ".join(map(str, paths)), flag="")
    if not layers:
        raise DodocoError(f"no decoder router records in {[str(p) for p in paths]} (after --ranks)")
    records = [_trace_records(p, rows, layers) for p, rows in per_file if rows]
    K = next(t.shape[2] for r in records for t in r.tokens)
    notes = [f"{skipped['mtp']} MTP router records skipped (multi-token-prediction heads)"] if skipped["mtp"] else []
    n_ranks = len({int(x) for r in records for x in r.ranks})
    return Dump(
        "megatron",
        "megatron-core",
        "router-trace",
        "token",
        records,
        top_k=int(K),
        layer_ids=layers,
        rows=f"one (step, micro-batch), tokens of {n_ranks} rank(s) concatenated",
        notes=notes,
        extra={"row_key": "step * 65536 + micro-batch"},
    )


TPE = "a Megatron tokens-per-expert log (tokens_per_expert/rank*.jsonl with tpe)"


def _file_rank(path: Path) -> int:
    m = re.search(r"rank(\d+)", path.name)
    if not m:
        raise DodocoError(f"cannot tell the rank of {path}: Megatron names tokens-per-expert logs rank<r>.jsonl")
    return int(m.group(1))


def _tpe_rows(path: Path, skipped: dict) -> tuple[dict, int]:
    """(iteration, micro-batch) -> {layer: int64 [E_local]} and E_local of one rank's log."""
    rows: dict = defaultdict(dict)
    e_local = None
    for n, rec in _lines(path, "tpe", TPE, "megatron-tpe"):
        if rec.get("block", "decoder") != "decoder":
            skipped["mtp"] += 1
            continue
        tpe, it, layer = rec["tpe"], _int(rec, "iter", path, n), _int(rec, "layer", path, n)
        if not isinstance(tpe, list):
            raise DodocoError(f"{path} line {n}: 'tpe' is not a list of micro-batch counts")
        for mb, counts in enumerate(tpe):
            c = ints(counts, f"tpe micro-batch {mb}", f"{path} line {n}")
            if c.ndim != 1:
                raise DodocoError(f"{path} line {n}: tpe micro-batch {mb} is not a list of counts")
            if e_local is None:
                e_local = c.size
            elif c.size != e_local:
                raise shape_error("local experts", f"{path} (first line)", [e_local], f"line {n}", [c.size])
            rows[(it, mb)][layer] = c
    return rows, e_local or 0


def read_tpe(paths, cfg: ImportConfig) -> Dump:
    """Read Megatron tokens-per-expert logs into a pass-granularity Dump (global expert ids)."""
    skipped = {"mtp": 0, "etp": 0}
    files = [(Path(p), _file_rank(Path(p))) for p in paths]
    files = [(p, r) for p, r in files if cfg.ranks is None or r in cfg.ranks]
    parsed = [(p, r, *_tpe_rows(p, skipped)) for p, r in files]
    e_locals = {e for *_, e in parsed}
    if len(e_locals) > 1:
        a, b = parsed[0], next(x for x in parsed if x[3] != parsed[0][3])
        raise shape_error("local experts", str(a[0]), [a[3]], str(b[0]), [b[3]])
    e_local = e_locals.pop() if e_locals else 0
    if not e_local:
        raise DodocoError(f"no decoder tokens-per-expert records in {[str(p) for p in paths]}")
    etp = max(1, int(cfg.expert_tp_size))
    ep = cfg.ep_size or (cfg.num_experts // e_local if cfg.num_experts else len({r // etp for _, r in files}))
    E = ep * e_local
    layers = sorted({l for *_, rows, _ in parsed for by_layer in rows.values() for l in by_layer})
    id_bound(layers, "layer id", ", ".join(map(str, paths)), flag="")
    records = []
    for path, rank, rows, _ in parsed:
        if rank % etp:
            skipped["etp"] += 1
            continue
        q = (rank // etp) % ep
        check_size((len(rows), len(layers), E), 8, path)
        keys, counts = [], np.zeros((len(rows), len(layers), E), dtype=np.int64)
        for i, ((it, mb), by_layer) in enumerate(sorted(rows.items())):
            keys.append(it * _MB + mb)
            for j, l in enumerate(layers):
                if l in by_layer:
                    counts[i, j, q * e_local : (q + 1) * e_local] = by_layer[l]
        records.append(Records(str(path), "", keys, rank, counts=counts, key_name="iteration*65536+micro-batch"))
    notes = [f"E = {ep} EP ranks x {e_local} local experts = {E}"]
    notes += [f"{skipped['mtp']} MTP records skipped"] if skipped["mtp"] else []
    notes += [f"{skipped['etp']} expert-tensor-parallel duplicate file(s) skipped"] if skipped["etp"] else []
    return Dump(
        "megatron-tpe",
        "megatron-core",
        "tokens-per-expert",
        "pass",
        records,
        num_experts=E,
        layer_ids=layers,
        rows="one (iteration, micro-batch), summed over ranks",
        notes=notes,
        extra={
            "ep_size": ep,
            "expert_tp_size": etp,
            "local_experts": e_local,
            "row_key": "iteration * 65536 + micro-batch",
        },
    )
