"""Dispatcher advice: measured ranking from replay results, rules only where nothing was measured."""

import json

import numpy as np
import pytest

from dodoco.cli import main
from dodoco.errors import DodocoError
from dodoco.recommend import hardware_of, recommend, rules, run_skew


def _row(disp, kind, d, c, skew=1.2, mb=100.0):
    return {
        "dispatcher": disp,
        "kind": kind,
        "dispatch": {"median_ms": d},
        "combine": {"median_ms": c},
        "receiver_skew": skew,
        "per_rank_bytes": mb * 1e6,
    }


def _result(N=4, device="NVIDIA H200", backend="nccl", rows=(), status=None):
    st = status or {
        "nccl": {"status": "measured"},
        "megatron": {"status": "measured"},
        "deepep": {"status": "not measured", "reason": "deep_ep does not import (ModuleNotFoundError)"},
    }
    return {
        "schema": "dodoco.replay/2",
        "N": N,
        "backend": backend,
        "timing": "CUDA events",
        "device": {"name": device},
        "dispatchers": st,
        "rows": list(rows),
    }


ROWS = [
    _row("nvshmem", "real", 1.0, 1.0),
    _row("nvshmem", "real", 1.2, 0.8),
    _row("megatron", "real", 2.0, 2.5),
    _row("megatron", "real", 2.0, 2.5),
    _row("nccl", "real", 0.5, 0.5),
    _row("nccl", "balanced", 0.1, 0.1),
    _row("megatron", "mock", 0.1, 0.1),
]


def test_measured_dispatchers_are_ranked_with_margin_floor_skew_and_size():
    a = recommend("h200", 4, [_result(rows=ROWS)])
    assert a["basis"] == "measured" and a["choice"] == "nvshmem"
    by = {r["dispatcher"]: r for r in a["rows"]}
    assert (
        by["nvshmem"]["rank"] == 1
        and "2.000 ms dispatch + combine, fastest, 2.00x the raw all_to_all_single, over 2 real cases"
        in by["nvshmem"]["evidence"]
    )
    assert (
        by["megatron"]["rank"] == 2 and "+125% (2.25x), 4.50x the raw" in by["megatron"]["evidence"]
    )  # 4.5 vs 2.0, 1.0
    assert "receiver skew 1.20, 100.0 MB per rank" in by["megatron"]["evidence"]
    assert by["nccl"]["status"] == "floor" and by["nccl"]["rank"] == "-"  # the reference, never the choice
    assert by["deepep"]["status"] == "not measured" and "ModuleNotFoundError" in by["deepep"]["evidence"]
    assert by["hybridep"]["status"] == "not measured" and by["hybridep"]["rank"] == "-"
    assert any("not used" in r for r in a["reasons"])


def test_mock_cases_rank_when_no_real_case_was_replayed():
    a = recommend("h200", 4, [_result(rows=[_row("nvshmem", "mock", 3, 3), _row("megatron", "mock", 1, 1)])])
    assert a["choice"] == "megatron" and "mock cases" in a["rows"][0]["evidence"]


def test_the_floor_alone_is_no_measurement_of_a_dispatcher():
    a = recommend("h200", 4, [_result(rows=[_row("nccl", "real", 1, 1)])])
    assert a["basis"] == "rules" and a["choice"] == "megatron"  # small EP rules; nccl listed as the floor
    assert [r["status"] for r in a["rows"] if r["dispatcher"] == "nccl"] == ["floor"]


@pytest.mark.parametrize(
    "res, hw, ep, why",
    [
        (_result(N=2, rows=ROWS), "h200", 4, "replay at N=2 ignored: not EP 4"),
        (_result(backend="gloo", rows=ROWS), "h200", 4, "CPU dry run (gloo): its times are not measurements"),
        (_result(rows=ROWS), "b200", 4, "measured on NVIDIA H200, not B200"),
    ],
)
def test_replays_that_are_not_evidence_fall_back_to_labelled_rules(res, hw, ep, why):
    a = recommend(hw, ep, [res])
    assert a["basis"] == "rules" and any(why in r for r in a["reasons"])
    assert any("not a measurement" in r for r in a["reasons"])
    assert all(r["status"] == "rules" for r in a["rows"])


def test_h100_takes_h200_measurements_and_says_so():
    a = recommend("h100", 4, [_result(rows=ROWS)])
    assert a["basis"] == "measured" and any("same Hopper NVLink4 fabric as H100" in r for r in a["reasons"])


def test_rules_order_and_bad_input():
    assert rules("h100", "medium")[0][0] == "deepep"
    assert rules("gb200", "large")[0][0] == "hybridep"
    assert rules("h200", "small")[0][0] == "megatron"  # small EP: second-order, start with alltoall
    assert rules("unknown", "medium")[0][0] == "megatron"
    assert recommend("h100", 32)["choice"] == "deepep"  # rules: nothing about this machine is checked
    assert hardware_of("NVIDIA H200") == "h200" and hardware_of("Tesla V100") is None
    with pytest.raises(DodocoError, match="did you mean 'gb200'"):
        recommend("gb20", 8)
    with pytest.raises(DodocoError, match="must be >= 1"):
        recommend("h100", 0)


def test_run_skew_matches_hand_loads(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "replay"))
    from synthetic_runs import make_run

    from dodoco.ep import contiguous, rank_loads
    from dodoco.ep.steps import step_order
    from dodoco.store import open_run

    counts = make_run(tmp_path / "r", "prose", S=8, E=8, hot=5.0)
    steps = counts[step_order(8, 0)].astype(np.int64).reshape((2, 4) + counts.shape[1:]).sum(1)
    R = rank_loads(steps, contiguous(8, 4)).astype(float)
    want = np.mean(R.max(-1) / R.mean(-1))
    assert run_skew(open_run(tmp_path / "r"), 4, 1) == pytest.approx(want)


def test_cli_prints_words_and_json(tmp_path, capsys):
    f = tmp_path / "r.json"
    f.write_text(json.dumps(_result(rows=ROWS)))
    assert main(["recommend", "--hardware", "h200", "--ep", "4", "--replay", str(f)]) == 0
    out = capsys.readouterr().out
    assert "recommended: nvshmem (measured)" in out and "False" not in out and "None" not in out
    assert main(["recommend", "--hardware", "gb300", "--ep", "72", "--skew", "1.1", "--json", "-"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice["band"] == "large" and advice["basis"] == "rules" and advice["choice"] == "hybridep"
    assert main(["recommend", "--hardware", "h200", "--ep", "4", "--replay", str(tmp_path / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
