"""SGLang expert-distribution recorder dumps (python/sglang/srt/eplb/expert_distribution.py).

The server records with ``--expert-distribution-recorder-mode`` and writes ``torch.save`` files to
``$SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR`` (default /tmp) on ``POST /dump_expert_distribution_record``:

- ``stat`` / ``stat_approx``: rank 0 writes ``expert_distribution_recorder_<time>.pt`` =
  ``{"rank": 0, "logical_count": int32 [W, L, E], "average_utilization_rate_over_window": float|None}``.
  Row w of ``logical_count`` is one forward pass of the whole deployment (physical counts mapped to
  logical experts and all-reduced over ranks); W is ``--expert-distribution-recorder-buffer-size``
  (default 1000, a circular buffer whose unused rows stay zero). L is the model's layer count,
  dense layers included (their rows are zero).
- ``per_pass``: every rank writes ``expert_distribution_recorder_<time>_<rank>.pt`` =
  ``{"records": [{"forward_pass_id", "rank", "gatherer_key", "global_physical_count": int32 [L, P]}],
  "last_physical_to_logical_map": int [L, P]}``; P physical experts (E + redundant ones). Counts are
  of the tokens this rank held; SGLang's own reader sums ranks per forward_pass_id.
- ``per_token``: as per_pass, each record holding ``topk_ids_of_layer`` int32 [L, T, 8] (physical
  ids, -1 where unused) plus ``input_ids``, ``positions``, ``extend_seq_lens``, ``forward_mode``.
- ``--init-expert-location`` accepts a ``.json`` (or ``.pt``) with ``logical_count`` [L, E] or
  [W, L, E]: a 2-D count is one aggregate window, a 3-D one is read like a stat dump.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.ingest.base import Dump, Records, ints
from dodoco.ingest.config import ImportConfig
from dodoco.ingest.sniff import load_obj, wrong_format

EXPECTED = "an SGLang expert-distribution dump (stat, per_pass or per_token .pt, or a JSON with logical_count)"


def _mode(obj, path) -> str:
    if isinstance(obj, dict) and "logical_count" in obj:
        return "stat" if "rank" in obj else "init-expert-location"
    if isinstance(obj, dict) and {"records", "last_physical_to_logical_map"} <= set(obj):
        recs = obj["records"]
        return "per_token" if recs and "topk_ids_of_layer" in recs[0] else "per_pass"
    raise wrong_format(path, "sglang", EXPECTED)


def _stat_records(path: Path, obj) -> tuple[Records, bool]:
    """(records, is_window) of a stat dump or an --init-expert-location file."""
    lc = ints(obj["logical_count"], "logical_count", path)
    if lc.ndim == 2:
        return Records(str(path), str(path), [0], [0], counts=lc[None]), True
    if lc.ndim != 3:
        raise DodocoError(
            f"logical_count in {path} has shape {list(lc.shape)}; SGLang writes [layers, experts] "
            "or [buffer, layers, experts]"
        )
    return Records(str(path), str(path), np.arange(lc.shape[0]), 0, counts=lc), False


def _field(rec: dict, key: str, path: Path, i: int):
    try:
        return rec[key]
    except (KeyError, TypeError):
        raise DodocoError(f"record {i} of {path} has no '{key}': not a complete SGLang per-pass dump") from None


def _pass_records(path: Path, obj, mode: str, ranks) -> Records:
    recs = [r for r in obj["records"] if ranks is None or int(r.get("rank", 0)) in ranks]
    keys = [int(_field(r, "forward_pass_id", path, i)) for i, r in enumerate(recs)]
    rk = [int(_field(r, "rank", path, i)) for i, r in enumerate(recs)]
    p2l = ints(obj["last_physical_to_logical_map"], "last_physical_to_logical_map", path)
    if mode == "per_token":
        tokens = []
        for i, r in enumerate(recs):
            t = ints(_field(r, "topk_ids_of_layer", path, i), f"topk_ids_of_layer of record {i}", path)
            if t.ndim != 3:
                raise DodocoError(
                    f"topk_ids_of_layer of record {i} in {path} has shape {list(t.shape)}, expected "
                    "[layers, tokens, top-k]"
                )
            tokens.append(t.transpose(1, 0, 2))  # [T, L, K']
        return Records(str(path), "", keys, rk, tokens=tokens, phys2log=p2l)
    counts = [_field(r, "global_physical_count", path, i) for i, r in enumerate(recs)]
    return Records(str(path), "", keys, rk, counts=counts, phys2log=p2l)


def read(paths, cfg: ImportConfig) -> Dump:
    """Read SGLang recorder dumps of one mode (see the module docstring) into a Dump."""
    loaded = [(Path(p), load_obj(p)) for p in paths]
    modes = {p: _mode(obj, p) for p, obj in loaded}
    kinds = {"pass" if m in ("stat", "init-expert-location") else m for m in modes.values()}
    if len(kinds) > 1:
        raise DodocoError(
            f"the inputs mix SGLang dump modes ({', '.join(sorted(set(modes.values())))}): import each mode separately"
        )
    mode = sorted(set(modes.values()))[0]
    records, windows = [], set()
    for path, obj in loaded:
        if modes[path] in ("stat", "init-expert-location"):
            rec, is_window = _stat_records(path, obj)
            records.append(rec)
            windows.add(is_window)
        else:
            records.append(_pass_records(path, obj, modes[path], cfg.ranks))
    if len(windows) > 1:
        raise DodocoError("the inputs mix 2-D logical_count totals with 3-D per-pass buffers: import them separately")
    return _dump(records, mode, windows == {True}, len(loaded), cfg)


def _dump(records, mode: str, window: bool, n_files: int, cfg: ImportConfig) -> Dump:
    if mode in ("stat", "init-expert-location"):
        gran = "window" if window else "pass"
        rows = (
            "aggregate counts over the recorded window"
            if window
            else "one forward pass of the whole deployment (all ranks, as SGLang all-reduces them); "
            "buffer order, unused buffer rows dropped"
        )
    else:
        gran = "token" if mode == "per_token" else "pass"
        n_ranks = len({int(r) for rec in records for r in rec.ranks})
        rows = f"one forward pass (forward_pass_id), summed over {n_ranks} rank(s)"
    notes = []
    maps = [rec.phys2log for rec in records if rec.phys2log is not None]
    if len(maps) > 1 and any(m.shape != maps[0].shape or not np.array_equal(m, maps[0]) for m in maps[1:]):
        notes.append(
            "the physical-to-logical maps differ across files (a rebalance during recording?): each "
            "file's counts were mapped with its own last map, exact only after the last rebalance"
        )
    L = records[0].row_shape()[0] if records and records[0].n else 0
    return Dump(
        "sglang",
        "sglang",
        mode,
        gran,
        records,
        layer_ids=list(range(L)),
        rows=rows,
        notes=notes,
        extra={"dump_files": n_files},
    )
