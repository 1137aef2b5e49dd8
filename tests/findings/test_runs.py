"""The verdicts from run directories (synthetic runs written with RunWriter)."""

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.findings import bands_of_runs, ep_invariance_of_runs, mock_vs_real_of_runs
from dodoco.findings.runs import default_eps, reference_batch
from dodoco.findings.synthetic import skewed_counts, write_counts_run
from dodoco.metrics import gini
from dodoco.store import find_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_counts_run(root / "a-mock", skewed_counts(64, 2, 16, assignments=64, concentration=None, seed=1),
                     model="a", condition="mock-uniform", seq_len=32)
    write_counts_run(root / "a-prose", skewed_counts(64, 2, 16, assignments=64, concentration=0.3, seed=2),
                     model="a", condition="prose", seq_len=32)
    write_counts_run(root / "b-prose", skewed_counts(64, 2, 16, assignments=64, concentration=5.0, seed=3),
                     model="b", condition="prose", seq_len=32)
    return root


def test_default_eps():
    assert default_eps(8) == [4, 8]
    assert default_eps(256) == [4, 8, 16, 32, 64, 128, 256]


def test_verdicts_from_runs(runs):
    rs = find_runs([runs])
    v = ep_invariance_of_runs(rs, batch=1)
    assert [r["eps"] for r in v.summary] == ["4,8,16"] * 3  # 32 > E = 16
    mvr = mock_vs_real_of_runs([r for r in rs if r.model == "a"], n_boot=100)
    assert len(mvr.summary) == 1 and mvr.summary[0]["mock"] == "mock-uniform"
    b = bands_of_runs(rs, batch=8)
    assert b.numbers["batch"] == 8
    prose_a = next(r for r in rs if r.model == "a" and r.condition == "prose")
    order = np.random.default_rng(0).permutation(64)
    steps = np.asarray(prose_a.counts)[order].reshape(8, 8, 2, 16).sum(axis=1)
    expected = float(np.nanmean(gini(steps), axis=1).mean())
    got = next(e["gini"] for e in b.evidence if e["model"] == "a" and e["condition"] == "prose")
    assert got == pytest.approx(expected)


def test_reference_batch_lowered_to_common():
    from dodoco.findings import GiniSeries

    s = [GiniSeries("a", "p", "real", 1, {1: [0.1], 2: [0.1], 4: [0.1]}),
         GiniSeries("b", "p", "real", 1, {1: [0.1], 2: [0.1]})]
    assert reference_batch(s, 8) == 2


def test_window_runs_are_refused_by_name(runs, tmp_path):
    w = write_counts_run(tmp_path / "w", skewed_counts(1, 2, 16), model="a", condition="prose", seq_len=32,
                         granularity="window")
    with pytest.raises(DodocoError, match=f"one window aggregate: {w}"):
        ep_invariance_of_runs(find_runs([w]))


def test_scan_with_shared_source_equals_ep_scan(runs):
    from dodoco.ep.steps import source_of
    from dodoco.findings.runs import scan_run

    run = next(r for r in find_runs([runs]) if r.condition == "prose")
    kw = dict(ep=[2, 4], batch=[1, 2], placement=["contiguous", "round_robin"], seed=3, n_boot=50)
    a = scan_run(run, **kw)
    b = scan_run(run, source=source_of(run.counts, 3), **kw)
    assert a.num_rows == b.num_rows and a.num_rows > 0
    np.testing.assert_allclose(a.column("value").to_numpy(), b.column("value").to_numpy(), rtol=1e-12)
    assert a.column("metric").to_pylist() == b.column("metric").to_pylist()
