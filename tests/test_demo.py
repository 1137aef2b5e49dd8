"""The demo's table and its closing sentences come from judge() (one path), on two tiny runs."""

import pytest

from dodoco.errors import DodocoError
from dodoco.findings import judge
from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.metrics.imbalance import gini
from dodoco.store import open_run
from dodoco.demo import DemoConfig, demo_rows


def test_demo_rows_from_the_findings(tmp_path):
    write_counts_run(
        tmp_path / "m",
        skewed_counts(64, 2, 8, assignments=32, concentration=None),
        model="m",
        condition="mock-uniform",
        kind="mock",
        seq_len=16,
        K=2,
    )
    write_counts_run(
        tmp_path / "p",
        skewed_counts(64, 2, 8, assignments=32, concentration=0.5, seed=1),
        model="m",
        condition="prose",
        kind="real",
        seq_len=16,
        K=2,
    )
    f = judge([tmp_path])
    rows = demo_rows(f)
    assert [r["condition"] for r in rows] == ["mock-uniform", "prose"]
    assert set(rows[0]) == {"model", "condition", "gini B=1", "gini B=8", "gini B=32", "gini all"}
    agg = open_run(tmp_path / "p").aggregate()
    assert rows[1]["gini all"] == pytest.approx(float(gini(agg).mean()))
    t = f.trends[str(tmp_path / "p")]
    assert rows[1]["gini B=8"] == pytest.approx(float(t["means"][t["batches"].index(8)]))
    assert f.headlines and all(s in f.sentences for s in f.headlines)


def test_demo_config_checks_values():
    with pytest.raises(DodocoError, match="--models 'big' must be zoo or tiny"):
        DemoConfig(models="big")
    with pytest.raises(DodocoError, match="--sequences 1 must be at least 2"):
        DemoConfig(sequences=1)
