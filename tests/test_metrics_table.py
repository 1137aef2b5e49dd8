"""The tidy metrics table: rows, columns, dtypes, model level, aggregate, parquet round trip."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dodoco.analysis import metrics_table, skipped_batches, summary_frame, write_parquet_atomic
from dodoco.ep.steps import step_order
from dodoco.errors import DodocoError
from dodoco.metrics import COLUMNS, METRICS, STATISTICS, all_metrics, summarise

S, L, E = 20, 3, 8


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    c = rng.poisson(rng.dirichlet(np.full(E, 0.5), size=(S, L)) * 50).astype(np.uint32)
    c[:, 2] = 0  # an empty layer: NaN per layer, ignored by the model level
    return c


@pytest.fixture(scope="module")
def table(counts):
    return metrics_table(counts, model="m", condition="prose", seq_len=128, batch_sizes=(4, 1, 2, 32, 4), n_boot=100)


def _col(t, name):
    return t.column(name).to_numpy(zero_copy_only=False)


def _select(t, **kw):
    mask = np.ones(t.num_rows, bool)
    for k, v in kw.items():
        mask &= _col(t, k) == v
    return _col(t, "value")[mask]


def test_columns_dtypes_and_row_count(table):
    assert tuple(table.column_names) == COLUMNS
    types = {f.name: f.type for f in table.schema}
    for c in ("model", "condition", "regime", "placement", "metric", "statistic"):
        assert types[c] == pa.string()
    for c in ("seq_len", "batch", "ep", "layer"):
        assert types[c] == pa.int64()
    assert types["value"] == pa.float64()
    # 3 kept batch sizes x (L+1) layers x 5 metrics x 5 statistics + aggregate (L+1) x 5 metrics
    assert table.num_rows == 3 * (L + 1) * 5 * 6 + (L + 1) * 5  # 6 statistics incl. n_steps
    assert sorted(set(_col(table, "batch"))) == [0, 1, 2, 4]
    assert set(_col(table, "layer")) == {-1, 0, 1, 2}
    assert set(_col(table, "statistic")) == set(STATISTICS) | {"aggregate"}
    assert set(_col(table, "metric")) == set(METRICS)
    assert set(_col(table, "regime")) == {"prefill"} and set(_col(table, "ep")) == {1}
    assert set(_col(table, "seq_len")) == {128}


def test_skipped_batches(table):
    assert skipped_batches(table) == [32]


def _steps(counts, P, seed=0):
    """Independent step sums: counts in step_order, consecutive groups of P, remainder dropped."""
    o = counts[step_order(counts.shape[0], seed)].astype(np.int64)
    n = counts.shape[0] // P
    return o[: n * P].reshape((n, P) + counts.shape[1:]).sum(axis=1)


def test_values_match_direct_computation(counts, table):
    steps = _steps(counts, 2)
    g = all_metrics(steps)["gini"]  # [10, L]
    s = summarise(g, n_boot=100, seed=0)
    for layer in range(L):
        for stat in STATISTICS:
            got = _select(table, batch=2, layer=layer, metric="gini", statistic=stat)
            np.testing.assert_allclose(got, [s[stat][layer]], rtol=1e-12, equal_nan=True)


def test_model_level_is_mean_of_layers(counts, table):
    steps = _steps(counts, 4)
    m = all_metrics(steps)["max_mean"]  # [5, L], layer 2 NaN
    assert np.isnan(m[:, 2]).all()
    want = np.nanmean(m, axis=1).mean()
    got = _select(table, batch=4, layer=-1, metric="max_mean", statistic="mean")
    np.testing.assert_allclose(got, [want], rtol=1e-12)
    agg = [_select(table, batch=0, layer=i, metric="gini", statistic="aggregate")[0] for i in range(L)]
    got = _select(table, batch=0, layer=-1, metric="gini", statistic="aggregate")
    np.testing.assert_allclose(got, [np.nanmean(agg)], rtol=1e-12)
    np.testing.assert_allclose(agg[:2], all_metrics(counts.sum(0))["gini"][:2], rtol=1e-12)


def test_batch_one_mean_is_mean_over_sequences(counts, table):
    per_seq = all_metrics(counts)["entropy"][:, 0]
    got = _select(table, batch=1, layer=0, metric="entropy", statistic="mean")
    np.testing.assert_allclose(got, [per_seq.mean()], rtol=1e-12)


def test_errors():
    with pytest.raises(DodocoError, match="shape"):
        metrics_table(np.zeros((3, 4)), model="m", condition="c", seq_len=1)
    with pytest.raises(DodocoError, match="batch"):
        metrics_table(np.ones((3, 1, 4), np.uint32), model="m", condition="c", seq_len=1, batch_sizes=(0,))
    with pytest.raises(DodocoError, match="non-negative integers"):
        metrics_table(np.ones((3, 1, 4)), model="m", condition="c", seq_len=1)


def test_parquet_round_trip_atomic(tmp_path, table):
    path = tmp_path / "run" / "metrics.parquet"
    write_parquet_atomic(table, path)
    assert [p.name for p in path.parent.iterdir()] == ["metrics.parquet"]  # no temp file left
    back = pq.read_table(path)
    assert back.schema.equals(table.schema, check_metadata=True)
    for c in COLUMNS[:-1]:
        assert back.column(c).equals(table.column(c))
    np.testing.assert_array_equal(_col(back, "value"), _col(table, "value"))  # NaN == NaN here
    assert skipped_batches(back) == [32]
    write_parquet_atomic(table.slice(0, 5), path)  # overwrite in place
    assert pq.read_table(path).num_rows == 5
    assert len(list(path.parent.iterdir())) == 1


def test_summary_frame(table):
    rows = summary_frame(table)
    assert [r["batch"] for r in rows] == [1, 2, 4, 0]
    for r in rows:
        assert {"model", "condition", "seq_len", "batch", "gini", "max_mean"} <= set(r)
        stat = "aggregate" if r["batch"] == 0 else "mean"
        for m in ("gini", "max_mean"):
            assert r[m] == _select(table, batch=r["batch"], layer=-1, metric=m, statistic=stat)[0]
    assert rows[0]["model"] == "m" and rows[0]["seq_len"] == 128


def test_table_sums_in_64_bits_on_uint32_counts():
    """Steps and the aggregate of counts whose sums pass 2^32 (a uint32 sum wraps)."""
    big = 3_000_000_000
    c = np.array([[[big, 1, 0]], [[big, 0, 2]], [[0, big, 1]], [[5, big, 0]]], np.uint32)
    t = metrics_table(c, model="m", condition="c", seq_len=1, batch_sizes=(2,), n_boot=10)
    want_agg = all_metrics(c.astype(np.int64).sum(0))["gini"][0]
    assert _select(t, batch=0, layer=0, metric="gini", statistic="aggregate")[0] == pytest.approx(want_agg)
    want = all_metrics(_steps(c, 2))["gini"][:, 0].mean()
    assert _select(t, batch=2, layer=0, metric="gini", statistic="mean")[0] == pytest.approx(want)
    assert _select(t, batch=2, layer=-1, metric="gini", statistic="n_steps")[0] == 2
