"""vLLM EPLB expert load (vllm/distributed/eplb/eplb_state.py).

With ``--enable-eplb`` every EP rank keeps, per model, ``expert_load_window`` int32
[window_size, num_moe_layers, num_physical_experts] (one row per engine step, written at row
``expert_load_window_step`` of a circular buffer; dummy steps are not recorded) and the
``physical_to_logical_map`` [num_moe_layers, num_physical_experts]. vLLM keeps them in memory only;
``dodoco.ingest.vllm_dump`` saves them from every worker (docs/ingest.md), one ``torch.save`` file per
rank::

    {"expert_load_window": int32 [W, L, P], "expert_load_window_step": int,
     "physical_to_logical_map": int64 [L, P], "rank": int, "model_name": str,
     "vllm_version": str, "dump_tag": str}

A user's own dump with the same keys (``.pt`` or ``.npz``) reads the same; ``expert_load_pass``
[L, P] alone is one step. Rows are un-rotated to time order, summed over ranks row by row (each
rank records the tokens it routed; with the naive all-to-all every rank sees every token, so import
one rank's file: ``--ranks 0``), and all-zero rows (unfilled window slots) are dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.ingest.base import Dump, Records, ints
from dodoco.ingest.config import ImportConfig
from dodoco.ingest.sniff import load_obj, wrong_format

EXPECTED = "a vLLM EPLB expert-load dump (expert_load_window or expert_load_pass with physical_to_logical_map)"


def _load(path: Path) -> dict:
    obj = load_obj(path)
    if not isinstance(obj, dict) or not {"expert_load_window", "expert_load_pass"} & set(obj):
        raise wrong_format(path, "vllm", EXPECTED)
    return obj


def _window(obj: dict, path: Path) -> np.ndarray:
    """[W, L, P] rows in time order (oldest first) from the window or the single pass."""
    if "expert_load_window" in obj:
        w = ints(obj["expert_load_window"], "expert_load_window", path)
        if w.ndim != 3:
            raise DodocoError(
                f"expert_load_window in {path} has shape {list(w.shape)}, expected [window, "
                "moe layers, physical experts]"
            )
        step = obj.get("expert_load_window_step")
        if step is not None and 0 < int(step) < w.shape[0]:
            w = np.concatenate([w[int(step) :], w[: int(step)]])  # the next slot to write is the oldest
        return w
    p = ints(obj["expert_load_pass"], "expert_load_pass", path)
    if p.ndim != 2:
        raise DodocoError(
            f"expert_load_pass in {path} has shape {list(p.shape)}, expected [moe layers, physical experts]"
        )
    return p[None]


def _map(obj: dict, path: Path, P: int, L: int, E: int | None):
    if "physical_to_logical_map" in obj:
        m = ints(obj["physical_to_logical_map"], "physical_to_logical_map", path)
        return m if m.ndim == 2 else np.broadcast_to(m.reshape(1, -1), (L, m.size))
    if E is not None and E != P:
        raise DodocoError(
            f"{path} has {P} physical experts but no physical_to_logical_map to fold them into "
            f"{E} logical experts: save the map with the load (dodoco.ingest.vllm_dump does)"
        )
    return None


def _drop_identical_ranks(records: list[Records]) -> tuple[list[Records], list[str]]:
    """Keep one rank per dump when every rank recorded the very same window (an all-to-all backend
    that gathers every token to every rank before routing): summing them would count tokens N times."""
    groups: dict[str, list[Records]] = {}
    for r in records:
        groups.setdefault(r.group, []).append(r)
    kept, notes = [], []
    for group in groups.values():
        first = group[0]
        same = len(group) > 1 and all(
            np.shape(r.counts) == np.shape(first.counts) and np.array_equal(r.counts, first.counts) for r in group[1:]
        )
        kept += [first] if same else group
        if same:
            notes.append(
                f"all {len(group)} ranks recorded identical windows (every rank routed every token): "
                f"only rank {int(first.ranks[0])}'s window is used"
            )
    return kept, notes


def read(paths, cfg: ImportConfig) -> Dump:
    """Read per-rank vLLM EPLB load dumps into a Dump (see the module docstring)."""
    records, versions, models = [], set(), set()
    for path in map(Path, paths):
        obj = _load(path)
        rank = int(obj.get("rank", 0))
        if cfg.ranks is not None and rank not in cfg.ranks:
            continue
        w = _window(obj, path)
        m = _map(obj, path, w.shape[2], w.shape[1], cfg.num_experts)
        group = str(obj.get("dump_tag", ""))
        records.append(
            Records(str(path), group, np.arange(w.shape[0]), rank, counts=w, phys2log=m, key_name="window row")
        )
        if obj.get("vllm_version"):
            versions.add(str(obj["vllm_version"]))
        if obj.get("model_name"):
            models.add(str(obj["model_name"]))
    if not records:
        raise DodocoError(f"no rank of {list(map(str, paths))} is in --ranks {list(cfg.ranks or [])}")
    records, notes = _drop_identical_ranks(records)
    n_ranks = len({int(r.ranks[0]) for r in records})
    notes += [] if len(versions) < 2 else [f"files come from several vLLM versions: {sorted(versions)}"]
    L = records[0].row_shape()[0]
    return Dump(
        "vllm",
        "vllm",
        "eplb-window",
        "pass",
        records,
        engine_version=sorted(versions)[0] if versions else None,
        model_id=sorted(models)[0] if len(models) == 1 else None,
        layer_ids=list(range(L)),
        rows=f"one engine step (EPLB window row), summed over {n_ranks} rank(s); unfilled rows dropped",
        notes=notes + ["layer ids are vLLM's MoE-layer indices (0..L-1); pass --layer-ids for model layer numbers"],
    )
