"""`dodoco simulate` end to end on a synthetic run and a synthetic calibration file."""

import json
import sys
from pathlib import Path

from dodoco.cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "replay"))
sys.path.insert(0, str(Path(__file__).parent))


def test_simulate_cli_with_calibration(tmp_path, capsys):
    from synthetic_runs import make_run
    from test_dispatch_model import _fake_result

    make_run(tmp_path / "runs" / "prose-L16", "prose", S=8, E=8, hot=4.0)
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"replays": [_fake_result(2, 30e-6, 280e9, 0.7), _fake_result(4, 32e-6, 310e9, 0.8)]}))
    out = tmp_path / "sim.json"
    rc = main(["simulate", str(tmp_path / "runs"), "--cluster", "dgx-h100", "--ep", "2,4,16", "--hidden", "64",
               "--calibration", str(cal), "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "skipped EP 16 for prose: EP=16 x batch=1 needs 16 sequences" in text
    assert "model error on replays" in text
    rows = json.loads(out.read_text())
    assert [r["N"] for r in rows] == [2, 4] and all(r["condition"] == "prose" for r in rows)
    assert all(r["dispatch_ms"] >= r["balanced_ms"] > 0 and r["compute_ms"] > 0 for r in rows)


def test_simulate_cli_errors(capsys):
    assert main(["simulate", "--cluster", "dgx-h9"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["simulate"]) == 2
    assert "name a run directory" in capsys.readouterr().err
