"""One path from runs to verdicts: the Python API, `dodoco findings` and `dodoco report` give the same
verdicts, tables and sentences on the same runs; the commands check their arguments before work."""

import json

import pytest

from dodoco.cli import main
from dodoco.findings import FindingsOptions, judge
from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.report.tables import json_safe


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-path")
    for model, seed in (("a", 0), ("b", 10)):
        write_counts_run(
            root / model / "mock-uniform",
            skewed_counts(96, 2, 16, assignments=64, concentration=None, seed=seed),
            model=model,
            condition="mock-uniform",
            kind="mock",
            seq_len=32,
            K=2,
        )
        write_counts_run(
            root / model / "prose",
            skewed_counts(96, 2, 16, assignments=64, concentration=0.4, seed=seed + 1),
            model=model,
            condition="prose",
            kind="real",
            seq_len=32,
            K=2,
        )
    return root


FLAGS = ["--ep", "2,4,8", "--placement", "contiguous,round_robin", "--seed", "3"]


def test_api_findings_command_and_report_agree(runs, tmp_path, capsys):
    api = json_safe(
        judge([runs], FindingsOptions(ep=(2, 4, 8), placement=("contiguous", "round_robin"), seed=3)).to_dict()
    )
    assert main(["findings", str(runs), *FLAGS, "--json", str(tmp_path / "f.json")]) == 0
    printed = capsys.readouterr().out
    cli = json.loads((tmp_path / "f.json").read_text())
    assert main(["report", str(runs), *FLAGS, "-o", str(tmp_path / "rep"), "--quiet"]) == 0
    rep = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert set(api["verdicts"]) == {"ep_invariance", "mock_vs_real", "bands"}
    assert api == cli == rep  # verdicts, every table, every sentence and the options
    assert api["sentences"][0] in printed and api["verdicts"]["bands"]["verdict"] in printed
    html = (tmp_path / "rep" / "report.html").read_text()
    assert all(s.replace("'", "&#x27;") in html for s in api["verdicts"]["mock_vs_real"]["sentences"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ep", "0"], "--ep 0 must be >= 1"),
        (["--threshold", "-1"], "--threshold -1.0 must be >= 0"),
        (["--low", "0.9", "--high", "0.1"], "--low 0.9 --high 0.1"),
        (["--attach", "missing.json"], "--attach missing.json does not exist"),
        (["--placement", "eplbb"], "unknown placement 'eplbb'"),
    ],
)
def test_report_checks_arguments_before_work(runs, tmp_path, capsys, argv, message):
    assert main(["report", str(runs), "-o", str(tmp_path / "rep"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not (tmp_path / "rep").exists()  # nothing was written


def test_unreadable_run_exits_non_zero(runs, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(runs / "a" / "prose", bad)
    (bad / "counts.npy").write_bytes(b"\x93NUMPY broken")
    assert main(["report", str(bad), "-o", str(tmp_path / "rep")]) == 1  # a damaged run: a data fault
    assert "counts.npy" in capsys.readouterr().err
    assert main(["findings", str(tmp_path / "nothing-here")]) == 2
    assert "does not exist" in capsys.readouterr().err
