"""CLI: report --json and its one-line errors (analyze: tests/metrics/test_analyze.py; export:
tests/simulate/test_export_cli.py)."""

import json

import pytest

from dodoco.cli import main
from dodoco.findings.synthetic import mock_and_prose_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return mock_and_prose_runs(tmp_path_factory.mktemp("cli-runs"))


def test_report_cli_json(runs, tmp_path, capsys):
    assert main(["report", str(runs), "-o", str(tmp_path / "rep"), "--json", "-", "--quiet", "--ep-batch", "1"]) == 0
    verdicts = json.loads(capsys.readouterr().out)
    assert {v["finding"] for v in verdicts} == {"ep_invariance", "mock_vs_real", "bands"}
    assert (tmp_path / "rep" / "report.html").exists()
    assert main(["report", str(runs), "-o", str(tmp_path / "rep2"), "--placement", "eplbb"]) == 2
    assert "unknown placement 'eplbb'" in capsys.readouterr().err


def test_report_folder_is_owned_stale_files_go_foreign_files_stay(tmp_path):
    from dodoco.errors import DodocoError
    from dodoco.report.folder import MANIFEST, ReportFolder

    out = tmp_path / "rep"
    first = ReportFolder(out)
    for name in ("report.html", "fig-a.png", "old.csv"):
        first.write(name, b"1")
    first.finish()
    (out / "notes.txt").write_text("mine")
    second = ReportFolder(out)
    second.write("report.html", b"2")
    second.write("fig-b.png", b"2")
    assert second.finish() == ["fig-a.png", "old.csv"]  # the earlier report's files not written again
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "report.html", "fig-b.png", "notes.txt"])
    assert (out / "notes.txt").read_text() == "mine"
    (out / "fig-c.png").write_bytes(b"user")  # a file no report wrote is never replaced
    with pytest.raises(DodocoError, match="fig-c.png was not written by a DODOCO report"):
        ReportFolder(out).write("fig-c.png", b"3")
    assert (out / "fig-c.png").read_bytes() == b"user"


def test_a_wrong_attachment_is_refused_in_one_line_before_any_work(runs, tmp_path, capsys):
    calibration = tmp_path / "cal.json"
    calibration.write_text('{"schema": "dodoco.calibration/1", "fits": []}')
    out = tmp_path / "rep"
    assert main(["report", str(runs), "-o", str(out), "--attach", str(calibration), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cal.json is neither a replay nor a simulate result file" in err and "\n" not in err
    assert not out.exists()
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "report.html").write_text("someone else's")
    assert main(["report", str(runs), "-o", str(tmp_path / "own"), "--quiet"]) == 2
    assert "was not written by a DODOCO report" in capsys.readouterr().err
