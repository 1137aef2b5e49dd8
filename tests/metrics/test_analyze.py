"""dodoco analyze and its API: summary and EP tables from runs (window aggregates included, as one
step), every argument checked before any table is printed, --json writes every table."""

import json

import numpy as np
import pytest

from dodoco.analysis import AnalyzeConfig, analyze
from dodoco.cli import main
from dodoco.ep.steps import step_order
from dodoco.errors import DodocoError
from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.store import open_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze-runs")
    write_counts_run(
        root / "m" / "prose-L32",
        skewed_counts(32, 2, 16, assignments=64, concentration=0.3, seed=1),
        model="m",
        condition="prose",
        seq_len=32,
    )
    write_counts_run(
        root / "w",
        skewed_counts(1, 2, 16, assignments=500),
        model="prod",
        condition="serving",
        seq_len=0,
        granularity="window",
    )
    return root


def _skew_contiguous(steps, N):
    """Receiver skew of contiguous placement (E/N consecutive experts per rank), mean over layers
    and steps, straight from the definition."""
    R = steps.reshape(steps.shape[:-1] + (N, -1)).sum(-1).astype(float)
    return float((R.max(-1) / R.mean(-1)).mean())


def test_ep_rows_equal_the_definition_and_are_sorted(runs):
    res = analyze(AnalyzeConfig(runs=(str(runs / "m"),), ep=(4, 2), batch=(2, 1), write=False))
    assert [(r["batch"], r["ep"]) for r in res.ep] == [(1, 2), (1, 4), (2, 2), (2, 4)]
    counts = np.asarray(open_run(runs / "m" / "prose-L32").counts).astype(np.int64)
    for r in res.ep:
        P = r["ep"] * r["batch"]
        steps = counts[step_order(32, 0)].reshape((32 // P, P) + counts.shape[1:]).sum(1)
        assert r["receiver_skew"] == pytest.approx(_skew_contiguous(steps, r["ep"]))
        assert r["steps"] == 32 // P and r["part"] == "all" and r["source_split"] == "observed"
        assert r["receiver_skew_lo"] <= r["receiver_skew"] <= r["receiver_skew_hi"]


def test_a_window_run_is_one_step_everywhere_and_flagged(runs):
    res = analyze(
        AnalyzeConfig(runs=(str(runs / "w"),), ep=(4,), batch=(1, 8), placement=("contiguous", "eplb"), write=False)
    )
    window = np.asarray(open_run(runs / "w").counts).astype(np.int64)  # [1, L, E]
    assert {r["batch"] for r in res.summary} == {1, 8, "all"}
    assert all(r["steps"] == 1 for r in res.summary if r["batch"] != "all")
    assert [(r["batch"], r["ep"], r["placement"]) for r in res.ep] == [(1, 4, "contiguous"), (8, 4, "contiguous")]
    for r in res.ep:  # the rank loads of the whole window
        assert r["receiver_skew"] == pytest.approx(_skew_contiguous(window, 4))
        assert r["steps"] == 1 and r["source_split"] == "uniform"
    text = " ".join(res.notes)
    assert "resting on 1 step" in text and "source_split uniform" in text and "skipped eplb" in text


def test_json_writes_every_table(runs, tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["analyze", str(runs), "--ep", "2", "--batch", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr()
    assert "EP scan" in printed.out and "resting on 1 step" in printed.err
    doc = json.loads(out.read_text())
    assert set(doc) == {"summary", "ep", "notes"}
    assert {r["batch"] for r in doc["summary"]} == {1, "all"}
    assert {(r["condition"], r["ep"]) for r in doc["ep"]} == {("prose", 2), ("serving", 2)}
    assert main(["analyze", str(runs / "w"), "--batch", "1", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)  # stdout holds the JSON only
    assert doc["ep"] == [] and doc["summary"][0]["steps"] == 1


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--ep", "0"], "--ep 0 is not allowed"),
        (["--batch", "0,2"], "--batch 0 is not allowed"),
        (["--ep", "4", "--placement", "contigous"], "did you mean 'contiguous'?"),
        (["--json", "/no/such/folder/a.json"], "does not exist"),
    ],
)
def test_bad_arguments_fail_before_any_table(runs, capsys, argv, message):
    assert main(["analyze", str(runs), *argv]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("error: ") and message in out.err
    assert out.err.count("\n") == 1


def test_no_feasible_pair_is_one_line(runs, capsys):
    assert main(["analyze", str(runs / "m" / "prose-L32"), "--ep", "32", "--batch", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: EP=32 x batch=4 needs 128 sequences") and "\n" not in err


def test_config_from_toml_and_flags(runs, tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('ep = [4]\nplacement = ["round_robin"]\nbatch = [2]\n')
    cfg = AnalyzeConfig.from_toml(f, runs=(str(runs),), batch=(1,))
    assert cfg.ep == (4,) and cfg.placement == ("round_robin",) and cfg.batch == (1,) and cfg.scan
    with pytest.raises(DodocoError, match="unknown key epp"):
        AnalyzeConfig.from_dict({"runs": [str(runs)], "epp": [4]})
