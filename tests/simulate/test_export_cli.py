"""`dodoco export neusim | traffic | llmservingsim` end to end, checked against brute-force sums."""

import json

import numpy as np
import pytest

from dodoco.cli import main
from dodoco.findings.synthetic import mock_and_prose_runs, skewed_counts, write_counts_run
from dodoco.store import open_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return mock_and_prose_runs(tmp_path_factory.mktemp("export-runs"), K=2)


def _steps(counts, P, seed=0):
    from dodoco.ep.steps import step_order

    order = step_order(counts.shape[0], seed)
    n = counts.shape[0] // P
    return np.stack([counts[order[k * P : (k + 1) * P]].sum(0) for k in range(n)])


def test_export_neusim_measured_and_effective(runs, tmp_path, capsys):
    out = tmp_path / "neusim.json"
    assert main(["export", "neusim", str(runs), "-o", str(out), "--batch", "2"]) == 0
    doc = json.loads(out.read_text())  # strict JSON (no NaN)
    assert doc["schema"] == "dodoco.neusim/2" and len(doc["exports"]) == 2  # no traces: prefill only
    e = next(x for x in doc["exports"] if x["condition"] == "prose")
    assert e["derived_at"]["ep"] == 8 and e["derived_at"]["batch"] == 2  # largest of 4..32 below E=16 that fits
    assert e["derived_at"]["tokens_basis"].startswith("one prefill step") and e["regime"] == "prefill"
    assert e["num_routed_experts"] == 16 and e["provenance"]["run"].endswith("prose-L32")
    steps = _steps(np.asarray(open_run(runs / "m" / "prose-L32").counts, dtype=float), 16)  # EP 8 x B 2
    f = float((steps.max(-1) / steps.mean(-1)).mean())
    assert e["measured"]["expert_load_imbalance_factor"] == pytest.approx(f, rel=1e-9)
    # measured skew by hand: contiguous, 2 experts per rank at EP 8
    R = steps.reshape(steps.shape[0], 2, 8, 2).sum(-1)
    assert e["skew"]["measured"] == pytest.approx(float((R.max(-1) / R.mean(-1)).mean()), rel=1e-9)
    assert e["effective"]["predicted_skew"] == pytest.approx(e["skew"]["measured"], rel=1e-9)
    assert e["config"]["expert_load_imbalance_factor"] == pytest.approx(
        e["effective"]["expert_load_imbalance_factor"], abs=1e-6
    )
    assert {x["ep"] for x in e["by_ep"]} == {4, 8, 16} and all("effective_residual_pct" in x for x in e["by_ep"])
    assert "NeuSim export: measured and effective" in capsys.readouterr().out


def test_export_neusim_window_run_and_errors(runs, tmp_path, capsys):
    w = write_counts_run(
        tmp_path / "w",
        skewed_counts(3, 2, 16, assignments=500),
        model="prod",
        condition="serving",
        seq_len=0,
        K=2,
        granularity="window",
    )
    out = tmp_path / "w.json"
    assert main(["export", "neusim", str(w), "-o", str(out)]) == 0
    (e,) = json.loads(out.read_text())["exports"]
    agg = np.asarray(open_run(w).counts, dtype=float).sum(0)
    assert e["measured"]["expert_load_imbalance_factor"] == pytest.approx(float((agg.max(-1) / agg.mean(-1)).mean()))
    assert e["derived_at"]["ep"] == 8 and e["by_ep"][0]["steps"] == 1
    assert e["derived_at"]["tokens_per_step"] is None and e["derived_at"]["tokens_basis"].startswith("refused: ")
    assert main(["export", "neusim", str(w), "-o", str(out), "--tokens-per-pass", "4096"]) == 0
    (e,) = json.loads(out.read_text())["exports"]
    assert e["derived_at"]["tokens_per_step"] == 4096 and "one forward pass" in e["derived_at"]["tokens_basis"]
    capsys.readouterr()
    prose = str(runs / "m" / "prose-L32")
    assert main(["export", "neusim", prose, "-o", str(out), "--regime", "decode"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run ") and "has no token traces for --regime decode" in err and "\n" not in err
    assert main(["export", "neusim", prose, "-o", str(out), "--batch", "64"]) == 2
    assert "no EP degree of [4, 8, 16, 32] is below E=16 with a step of EP x 64 in 32 units" in capsys.readouterr().err
    assert main(["export", "neusm", prose, "-o", str(out)]) == 2
    assert "did you mean 'neusim'" in capsys.readouterr().err
    assert main(["export", "llmservingsim", str(w), "-o", str(out)]) == 2
    assert "window aggregate" in capsys.readouterr().err


def test_export_traffic_json_and_csv_match_brute_force(runs, tmp_path):
    out = tmp_path / "t.json"
    prose = runs / "m" / "prose-L32"
    assert main(["export", "traffic", str(prose), "-o", str(out), "--ep", "4", "--batch", "2", "--hidden", "8"]) == 0
    (e,) = json.loads(out.read_text())["exports"]
    assert e["ranks"] == 4 and e["bytes_per_row"] == 16 and len(e["matrices"]) == (32 // 8) * 2  # steps x layers
    counts = np.asarray(open_run(prose).counts)
    from dodoco.ep.steps import step_order

    order = step_order(32, 0)
    m = e["matrices"][3]  # step 1, layer 1
    seqs = order[8 * m["step"] : 8 * (m["step"] + 1)]
    for i in range(4):
        for j in range(4):  # contiguous: experts 4j..4j+3 on rank j; rank i holds step sequences 2i, 2i+1
            want = counts[seqs[2 * i : 2 * i + 2], m["layer"], 4 * j : 4 * j + 4].sum() * 16
            assert m["bytes"][i][j] == want
    csv = tmp_path / "t.csv"
    assert main(["export", "traffic", str(prose), "-o", str(csv), "--ep", "4", "--batch", "2", "--hidden", "8"]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == "model,condition,ranks,placement,step,layer,src,dst,bytes" and len(lines) == 1 + 8 * 16
    assert sum(int(x.rsplit(",", 1)[1]) for x in lines[1:]) == sum(sum(map(sum, mm["bytes"])) for mm in e["matrices"])


def test_export_llmservingsim_gate_stats(runs, tmp_path):
    out = tmp_path / "gate_stats.json"
    prose = runs / "m" / "prose-L32"
    assert main(["export", "llmservingsim", str(prose), "-o", str(out)]) == 0
    d = json.loads(out.read_text())
    assert (d["schema_version"], d["num_experts"], d["num_experts_per_tok"], d["model"]) == (1, 16, 2, "m")
    counts = np.asarray(open_run(prose).counts)
    tokens, distinct, calls = d["curve"][0]  # one sequence per gate call
    assert tokens == round(counts.sum(-1).mean() / 2) and calls == 32 * 2
    assert distinct == pytest.approx(float((counts > 0).sum(-1).mean()))
    four = next(c for c in d["curve"] if c[2] == 8 * 2)  # steps of 4 sequences
    assert four[1] == pytest.approx(float((_steps(counts, 4) > 0).sum(-1).mean()))
    assert d["n_calls"] == sum(c[2] for c in d["curve"]) and [c[0] for c in d["curve"]] == sorted(
        c[0] for c in d["curve"]
    )
