"""Dispatcher advice: guidance order, availability gate, skew, and the CLI."""

import json

import numpy as np
import pytest

from dodoco.cli import main
from dodoco.errors import DodocoError
from dodoco.recommend import availability, recommend, run_skew

ALL = {"alltoall": (True, "t"), "deepep": (True, "t"), "hybridep": (True, "t")}
NONE = {"alltoall": (True, "t"), "deepep": (False, "t"), "hybridep": (False, "t")}


def test_guidance_order_when_everything_is_installed():
    assert recommend("h100", 32, available=ALL)["choice"] == "deepep"
    assert recommend("gb200", 128, available=ALL)["choice"] == "hybridep"
    assert recommend("b200", 32, available={**ALL, "hybridep": (False, "t")})["choice"] == "deepep"
    assert recommend("h200", 4, available=ALL)["choice"] == "alltoall"  # small EP: second-order
    assert recommend("unknown", 64, available=ALL)["choice"] == "alltoall"


def test_unavailable_backends_are_never_ranked():
    a = recommend("h100", 32, skew=1.8, available=NONE)
    assert a["choice"] == "alltoall"
    deepep = next(r for r in a["rows"] if r["backend"] == "deepep")
    assert deepep["status"] == "unavailable" and deepep["rank"] is None and "not measured" in deepep["evidence"]
    assert [r["rank"] for r in a["rows"] if r["available"]] == [1]
    assert any("not importable here" in x for x in a["reasons"])
    assert any("skew 1.80" in x and "eplb" in x for x in a["reasons"])


def test_bad_input_and_this_machine():
    with pytest.raises(DodocoError, match="did you mean 'gb200'"):
        recommend("gb20", 8)
    with pytest.raises(DodocoError, match="must be >= 1"):
        recommend("h100", 0)
    assert availability()["alltoall"][0] is True


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


def test_cli_json(capsys):
    assert main(["recommend", "--hardware", "gb300", "--ep", "72", "--skew", "1.1", "--json", "-"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice["band"] == "large" and advice["hardware"] == "gb300"
