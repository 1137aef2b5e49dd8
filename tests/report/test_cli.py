"""CLI: report --json and its one-line errors (analyze: tests/metrics/test_analyze.py; export:
tests/simulate/test_export_cli.py)."""

import json

import pytest

from dodoco.cli import main
from dodoco.findings.synthetic import skewed_counts, write_counts_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-runs")
    write_counts_run(root / "m" / "mock-uniform-L32", skewed_counts(32, 2, 16, assignments=64, concentration=None),
                     model="m", condition="mock-uniform", seq_len=32)
    write_counts_run(root / "m" / "prose-L32", skewed_counts(32, 2, 16, assignments=64, concentration=0.3, seed=1),
                     model="m", condition="prose", seq_len=32)
    return root


def test_report_cli_json(runs, tmp_path, capsys):
    assert main(["report", str(runs), "-o", str(tmp_path / "rep"), "--json", "-", "--quiet", "--ep-batch", "1"]) == 0
    verdicts = json.loads(capsys.readouterr().out)
    assert {v["finding"] for v in verdicts} == {"ep_invariance", "mock_vs_real", "bands"}
    assert (tmp_path / "rep" / "report.html").exists()
    assert main(["report", str(runs), "-o", str(tmp_path / "rep2"), "--placement", "eplbb"]) == 2
    assert "unknown placement 'eplbb'" in capsys.readouterr().err
