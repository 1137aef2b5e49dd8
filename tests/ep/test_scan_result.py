"""ScanResult: equal to the table the pre-restructure scan produced on fixed inputs, and its views
(rows, series, value) equal that table's rows.

tests/ep/fixtures/scan-cb8098b.parquet was written by ep_scan, decode_scan and metrics_table at
commit cb8098b (before steps, placements and the scan result were restructured) on the inputs
stored beside it; every value must come out the same (rows of the new statistic n_steps aside).
"""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dodoco.ep import decode_scan, ep_scan
from dodoco.analysis import metrics_table

FIX = Path(__file__).parent / "fixtures"
KEY = ["batch", "ep", "placement", "layer", "metric", "statistic"]


@pytest.fixture(scope="module")
def old():
    t = pq.read_table(FIX / "scan-cb8098b.parquet")
    return {
        case: t.filter(t.column("case").to_numpy(zero_copy_only=False) == case)
        for case in set(t.column("case").to_pylist())
    }


@pytest.fixture(scope="module")
def counts():
    return np.load(FIX / "scan_counts.npy")


def _frame(table):
    d = {k: table.column(k).to_numpy(zero_copy_only=False) for k in KEY + ["value"]}
    keep = d["statistic"] != "n_steps"
    return {tuple(d[k][i] for k in KEY): d["value"][i] for i in np.flatnonzero(keep)}


def _assert_same(new, old):
    a, b = _frame(new), _frame(old)
    assert a.keys() == b.keys()
    got, want = np.array([a[k] for k in b]), np.array([b[k] for k in b])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True)


def _new(case, counts):
    if case == "heldout":
        return ep_scan(
            counts,
            ep=(1, 2, 4, 8, 16),
            batch=(1, 2, 3),
            placement=("contiguous", "round_robin", "eplb"),
            n_boot=50,
            seed=0,
            model="m",
            condition="c",
            seq_len=8,
        )
    if case == "all":
        return ep_scan(counts, ep=(2, 4, 8), batch=(1, 2), placement=("contiguous", "round_robin"), n_boot=50, seed=3)
    if case == "replicas":
        return ep_scan(counts, ep=(4,), batch=(2,), placement="eplb", num_redundant=4, n_boot=50)
    topk, offsets = np.load(FIX / "decode_topk.npy"), np.load(FIX / "decode_offsets.npy")
    return decode_scan(
        topk, offsets, 16, ep=(2, 4), batch=(1, 2), placement=("contiguous", "eplb"), n_boot=50, n_positions=3
    )


@pytest.mark.parametrize("case", ["heldout", "all", "replicas", "decode"])
def test_scan_equals_pre_restructure_table(case, old, counts):
    _assert_same(_new(case, counts).to_table(), old[case])


def test_metrics_table_equals_pre_restructure_table(old, counts):
    new = metrics_table(counts, model="m", condition="c", seq_len=8, batch_sizes=(1, 2, 4, 32), n_boot=50)
    _assert_same(new, old["metrics"])


def test_rows_series_and_value_are_views_of_the_table(counts):
    r = _new("heldout", counts)
    t = _frame(r.to_table())
    rows = r.rows(layer=1)
    assert [(x["batch"], x["ep"]) for x in rows] == sorted((x["batch"], x["ep"]) for x in rows)
    row = next(x for x in rows if (x["batch"], x["ep"], x["placement"]) == (2, 4, "eplb"))
    assert row["receiver_skew"] == t[(2, 4, "eplb", 1, "receiver_skew", "mean")]
    assert row["receiver_skew_lo"] == t[(2, 4, "eplb", 1, "receiver_skew", "ci_lo")]
    assert row["steps"] == row["receiver_skew_n"] == 48 // 8  # 48 held-out sequences, P = 8
    assert row["part"] == "held-out" and row["source_split"] == "observed"
    s = r.series("receiver_skew", "contiguous", 1)
    assert s["ep"].tolist() == [1, 2, 4, 8, 16]
    assert s["hi"][2] == t[(1, 4, "contiguous", -1, "receiver_skew", "ci_hi")]
    assert s["steps"].tolist() == [48, 24, 12, 6, 3]
    assert r.value(3, 16, "round_robin", "gini") == t[(3, 16, "round_robin", -1, "gini", "mean")]
    assert np.isnan(r.value(3, 16, "round_robin", "no_such_metric"))
