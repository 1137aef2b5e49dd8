"""CLI: report --json, export neusim, their one-line errors (analyze: tests/metrics/test_analyze.py)."""

import json

import numpy as np
import pytest

from dodoco.cli import main
from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.store import open_run


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


def test_export_neusim_json(runs, tmp_path, capsys):
    from dodoco.ep.steps import step_order
    from dodoco.metrics import max_mean

    out = tmp_path / "neusim.json"
    assert main(["export", "neusim", str(runs), "-o", str(out), "--ep", "8", "--batch", "2"]) == 0
    doc = json.loads(out.read_text())  # strict JSON (no NaN)
    assert doc["schema"] == "dodoco.neusim/1" and len(doc["exports"]) == 2  # no traces: prefill only
    e = next(x for x in doc["exports"] if x["condition"] == "prose")
    assert e["derived_at"]["ep"] == 8 and e["derived_at"]["batch"] == 2 and e["regime"] == "prefill"
    assert e["num_routed_experts"] == 16 and e["provenance"]["run"].endswith("prose-L32")
    counts = np.asarray(open_run(runs / "m" / "prose-L32").counts)
    steps = counts[step_order(32, 0)].astype(np.int64).reshape(2, 16, *counts.shape[1:]).sum(1)  # EP 8 x B 2
    assert e["config"]["expert_load_imbalance_factor"] == pytest.approx(float(max_mean(steps).mean()), rel=1e-5)
    assert 1 <= e["config"]["num_worst_case_experts"] <= 1  # K = 1 in these runs
    assert {x["ep"] for x in e["by_ep"]} == {4, 8, 16}


def test_export_neusim_window_run_and_errors(runs, tmp_path, capsys):
    from dodoco.metrics import max_mean

    w = write_counts_run(tmp_path / "w", skewed_counts(3, 2, 16, assignments=500), model="prod", condition="serving",
                         seq_len=0, K=2, granularity="window")
    out = tmp_path / "w.json"
    assert main(["export", "neusim", str(w), "-o", str(out), "--ep", "4"]) == 0
    (e,) = json.loads(out.read_text())["exports"]
    agg = np.asarray(open_run(w).counts).sum(0)
    assert e["config"]["expert_load_imbalance_factor"] == pytest.approx(float(max_mean(agg).mean()), rel=1e-6)
    assert e["by_ep"][0]["steps"] == 1 and e["by_ep"][0]["tokens_per_step"] == pytest.approx(agg.sum(-1).mean() / 2)
    capsys.readouterr()
    assert main(["export", "neusim", str(runs / "m" / "prose-L32"), "-o", str(out), "--regime", "decode"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run ") and "has no token traces for --regime decode" in err and "\n" not in err
    assert main(["export", "neusim", str(runs / "m" / "prose-L32"), "-o", str(out), "--batch", "64"]) == 2
    assert "no EP degree in [4, 8, 16] fits a step of EP x 64" in capsys.readouterr().err
