"""Imported runs go through the analysis: metrics, EP scan, window rank loads, report."""

import numpy as np
import pytest


def _gini(c):
    """Gini of c[E] by the DESIGN.md formula, computed independently of dodoco.metrics."""
    c = np.sort(np.asarray(c, dtype=np.float64))
    E = c.size
    i = np.arange(1, E + 1)
    return float(((2 * i - E - 1) * c).sum() / (E * c.sum()))


def test_summary_aggregate_gini_matches_the_fixture_numbers(dumps, run_of, tmp_path):
    from dodoco.analysis import summary_rows

    truth = dumps["sglang_per_pass"]
    man, run = run_of("sglang", truth["files"], model_id="tiny/moe", condition="prod")
    rows = summary_rows([run.path], batch_sizes=[1, 2])
    agg = next(r for r in rows if r["batch"] == "all")
    want = np.mean([_gini(truth["counts"].sum(axis=0)[l]) for l in range(truth["counts"].shape[1])])
    assert agg["gini"] == pytest.approx(want, rel=1e-12)
    assert agg["model"] == "tiny/moe" and agg["condition"] == "prod"
    per_pass = next(r for r in rows if r["batch"] == 1)  # a step of 1 "sequence" = 1 forward pass
    step_ginis = [np.mean([_gini(c[l]) for l in range(c.shape[0])]) for c in truth["counts"]]
    assert per_pass["gini"] == pytest.approx(np.mean(step_ginis), rel=1e-9)
    assert (run.path / "metrics.parquet").exists()


def test_window_runs_are_one_step_for_every_batch(dumps, run_of):
    from dodoco.analysis import run_metrics

    _, run = run_of("table", dumps["table_parquet"]["files"])
    table = run_metrics(run, batch_sizes=(1, 8))  # a window is one step whatever B: flagged, not refused
    d = {c: table.column(c).to_numpy(zero_copy_only=False) for c in ("batch", "layer", "metric", "statistic", "value")}
    gini = (d["layer"] == -1) & (d["metric"] == "gini")
    agg = d["value"][gini & (d["statistic"] == "aggregate")][0]
    for B in (1, 8):
        at = gini & (d["batch"] == B)
        assert d["value"][at & (d["statistic"] == "mean")][0] == pytest.approx(agg)
        assert d["value"][at & (d["statistic"] == "n_steps")][0] == 1


def test_ep_scan_runs_on_imported_passes(dumps, run_of):
    from dodoco.analysis import ep_rows
    from dodoco.ep import contiguous, rank_loads, receiver_skew

    truth = dumps["sglang_stat"]
    _, run = run_of("sglang", truth["files"])
    rows, _ = ep_rows(run, ep=[4], batch=[1], placement=["contiguous"])
    row = next(r for r in rows if r["ep"] == 4 and r["batch"] == 1 and r["placement"] == "contiguous")
    # independent: a step of N*B = 4 passes in the seeded order, rank loads of the contiguous placement
    from dodoco.ep.steps import step_order

    order = step_order(truth["counts"].shape[0], 0)
    steps = [truth["counts"][order[i : i + 4]].sum(axis=0) for i in range(0, len(order) - 3, 4)]
    skews = [np.mean(receiver_skew(rank_loads(s, contiguous(16, 4)))) for s in steps]
    assert row["receiver_skew"] == pytest.approx(np.mean(skews), rel=1e-9)


def test_window_runs_get_rank_loads_and_placements(dumps, run_of):
    from dodoco.analysis import ep_rows
    from dodoco.ep import contiguous, rank_loads, receiver_skew

    truth = dumps["sglang_init_json"]
    _, run = run_of("sglang", truth["files"])
    rows, _ = ep_rows(run, ep=[4, 8], batch=[1], placement=["contiguous", "round_robin"])
    assert {(r["ep"], r["placement"]) for r in rows} == {
        (4, "contiguous"),
        (8, "contiguous"),
        (4, "round_robin"),
        (8, "round_robin"),
    }
    r4 = next(r for r in rows if r["ep"] == 4 and r["placement"] == "contiguous")
    agg = truth["counts"][0]
    assert r4["receiver_skew"] == pytest.approx(np.mean(receiver_skew(rank_loads(agg, contiguous(16, 4)))))
    assert r4["gini"] == pytest.approx(np.mean([_gini(c) for c in agg]))
    assert r4["steps"] == 1 and r4["source_split"] == "uniform"


def test_eplb_placement_fits_on_window_counts(dumps, run_of):
    from dodoco.ep import eplb_layers, rank_loads, receiver_skew

    _, run = run_of("sglang", dumps["sglang_init_json"]["files"])
    load = np.asarray(run.counts[0], dtype=np.int64)  # [L, E]
    p = eplb_layers(load, 4, num_redundant=4)
    skew_eplb = receiver_skew(rank_loads(load, p))
    from dodoco.ep import contiguous

    skew_contig = receiver_skew(rank_loads(load, contiguous(16, 4)))
    assert np.all(skew_eplb <= skew_contig + 1e-12)


def test_cli_import_then_analyze(dumps, tmp_path, capsys):
    from dodoco.cli import main

    out = tmp_path / "prod"
    assert (
        main(
            [
                "import",
                "sglang",
                *map(str, dumps["sglang_per_pass"]["files"]),
                "-o",
                str(out),
                "--model-id",
                "tiny/moe",
                "--top-k",
                "4",
                "--json",
                str(tmp_path / "imp.json"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "excluded layers" in printed and "0, 1" in printed
    assert main(["analyze", str(out), "--batch", "1,2", "--json", str(tmp_path / "a.json")]) == 0
    import json

    rows = json.loads((tmp_path / "a.json").read_text())["summary"]
    assert {r["batch"] for r in rows} == {"all", 1, 2}
    assert main(["validate", str(out)]) == 0


def test_report_builds_on_imported_runs(dumps, run_of, tmp_path):
    build = pytest.importorskip("dodoco.report.build")
    _, passes = run_of("sglang", dumps["sglang_stat"]["files"], model_id="tiny/moe")
    _, window = run_of("table", dumps["table_parquet"]["files"], model_id="tiny/moe")
    html = build.build_report([passes.path, window.path], tmp_path / "report", ep=(4,), batch=(1,))
    text = html.read_text()
    assert "tiny/moe" in text and "window aggregate" in text
