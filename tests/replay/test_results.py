"""The result schema: summaries, bend points, reading old results, errors."""

import json

import pytest

from dodoco.errors import DodocoError
from dodoco.replay.dispatchers import expand_names, get, missing
from dodoco.replay.dispatchers.nvshmem import HEAP_ENV, _Pool, parse_size
from dodoco.replay.bends import bend_points
from dodoco.replay.results import load_results, summary_rows, upgrade


def _row(disp, kind, cond, ms, splits, rho=None, pattern="routing", per_rank=1e6):
    return {
        "dispatcher": disp,
        "kind": kind,
        "condition": cond,
        "pattern": pattern,
        "rho": rho,
        "dispatch": {"median_ms": ms, "p10_ms": ms, "p90_ms": ms},
        "combine": {"median_ms": ms},
        "splits": splits,
        "per_rank_bytes": per_rank,
        "receiver_skew": 1.0,
        "floor_ms": 1.0,
        "vs_floor": ms,
    }


def test_vs_balanced_pairs_each_dispatcher_with_its_own_control():
    rows = [
        _row("nccl", "real", "prose", 2.0, [[3, 1], [2, 2]]),
        _row("nccl", "balanced", "balanced", 1.0, [[2, 2], [2, 2]]),
        _row("megatron", "real", "prose", 6.0, [[3, 1], [2, 2]]),
        _row("megatron", "balanced", "balanced", 4.0, [[2, 2], [2, 2]]),
    ]
    s = {(r["dispatcher"], r["condition"]): r for r in summary_rows({"N": 2, "rows": rows})}
    assert s["nccl", "prose"]["vs_balanced"] == 2.0 and s["megatron", "prose"]["vs_balanced"] == 1.5


def test_bend_points_find_the_first_rho_over_five_percent():
    rows = [
        _row("nccl", "grid", "grid-hot-receiver", t, [[1]], rho=r, pattern="hot-receiver", per_rank=256 << 20)
        for r, t in [(1.0, 10.0), (1.05, 10.4), (1.1, 10.6), (2.0, 17.0)]
    ]
    rows += [
        _row("nccl", "grid", "grid-hot-pair", t, [[1]], rho=r, pattern="hot-pair", per_rank=(16 << 20) - 9000)
        for r, t in [(1.0, 1.0), (2.0, 1.04)]
    ]
    b = {(x["pattern"], x["MiB_per_rank"]): x for x in bend_points(rows)}
    assert b["hot-receiver", 256.0]["knee_rho"] == 1.1 and b["hot-receiver", 256.0]["ratio_at_2"] == 1.7
    assert b["hot-pair", 16.0]["knee_rho"] is None  # 4% at rho 2: no knee


def test_old_results_load_as_nccl_rows(tmp_path):
    old = {
        "schema": "dodoco.replay/1",
        "N": 2,
        "row_bytes": 4,
        "cases": [
            {
                "condition": "prose",
                "kind": "real",
                "step": 0,
                "layer": 0,
                "splits": [[1, 2], [3, 4]],
                "per_rank": 20.0,
                "receiver_skew": 1.2,
                "dispatch": {"median_ms": 1.0, "p10_ms": 1.0, "p90_ms": 1.0},
                "combine": {"median_ms": 1.0},
            }
        ],
    }
    f = tmp_path / "old.json"
    f.write_text(json.dumps(old))
    res = load_results([f])[0]
    assert res["schema"] == "dodoco.replay/2" and res["upgraded_from"] == "dodoco.replay/1"
    assert res["rows"][0]["dispatcher"] == "nccl" and res["rows"][0]["per_rank_bytes"] == 20.0
    assert upgrade(res) is res
    (tmp_path / "x.json").write_text(json.dumps({"schema": "dodoco.sim/1"}))
    with pytest.raises(DodocoError, match="holds schema 'dodoco.sim/1', not a replay result"):
        load_results([tmp_path / "x.json"])


def test_registry_names_and_reasons():
    assert expand_names(["nccl,nvshmem", "all"])[:2] == ("nccl", "nvshmem")
    assert get("nccl").probe("gloo", 2) is None
    assert "needs CUDA" in get("nvshmem").probe("gloo", 2)
    why = get("megatron").probe("gloo", 2)
    assert ("does not import" in why) if missing("megatron") else ("needs CUDA" in why)


def test_nvshmem_heap_size_set_or_refused(monkeypatch):
    assert parse_size("8G") == 8 << 30 and parse_size("512M") == 512 << 20 and parse_size("1024") == 1024
    pool = object.__new__(_Pool)
    monkeypatch.delenv(HEAP_ENV, raising=False)
    pool._size_heap(3 << 30)
    assert parse_size(__import__("os").environ[HEAP_ENV]) >= 3 << 30
    monkeypatch.setenv(HEAP_ENV, "1G")
    with pytest.raises(DodocoError, match="need 3.00 GiB of symmetric heap .* NVSHMEM_SYMMETRIC_SIZE=1G: raise"):
        pool._size_heap(3 << 30)
