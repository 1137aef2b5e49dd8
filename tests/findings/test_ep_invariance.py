"""EP invariance verdict: hand-built scan tables, synthetic counts with known answers, bad input."""

import numpy as np
import pyarrow as pa
import pytest

from dodoco.ep.scan import ep_scan
from dodoco.errors import DodocoError
from dodoco.findings import ep_invariance, relative_change
from dodoco.ep.steps import step_order
from dodoco.metrics import max_mean
from dodoco.metrics.table import SCHEMA


def _table(values: dict, model="m", condition="prose", seq_len=64, layer_values=None) -> pa.Table:
    """A minimal scan table: {(batch, ep): (max_mean, receiver_skew)} at layer -1 (+ optional layer 0)."""
    rows = []
    for (B, N), (mm, rs) in values.items():
        for metric, v in (("max_mean", mm), ("receiver_skew", rs)):
            for stat, x in (("mean", v), ("ci_lo", v - 0.01), ("ci_hi", v + 0.01)):
                rows.append((model, condition, seq_len, "prefill", B, N, "contiguous", -1, metric, stat, x))
                if layer_values is not None:
                    y = layer_values[(B, N)] if metric == "max_mean" else v
                    rows.append((model, condition, seq_len, "prefill", B, N, "contiguous", 0, metric, stat, y))
    cols = list(zip(*rows))
    return pa.Table.from_arrays([pa.array(list(c), f.type) for c, f in zip(cols, SCHEMA)], schema=SCHEMA)


def test_relative_change_hand_computed():
    assert relative_change([1.0, 1.04, 1.02]) == pytest.approx(0.04)
    np.testing.assert_allclose(relative_change([[2.0, 1.0], [3.0, 1.5]]), [0.5, 0.5])
    assert np.isnan(relative_change([0.0, 1.0]))


def test_threshold_is_inclusive_and_configurable():
    ok = ep_invariance(_table({(1, 4): (2.0, 1.1), (1, 8): (2.1, 1.3)}))  # change exactly 5%
    assert ok.verdict == "intrinsic"
    assert ok.summary[0]["max_mean_change"] == pytest.approx(0.05)
    assert ok.summary[0]["receiver_skew_change"] == pytest.approx(0.2 / 1.1)
    bad = ep_invariance(_table({(1, 4): (2.0, 1.1), (1, 8): (2.2, 1.1)}))
    assert bad.verdict == "placement-sensitive"
    assert ep_invariance(_table({(1, 4): (2.0, 1.1), (1, 8): (2.2, 1.1)}), threshold=0.1).verdict == "intrinsic"
    assert [r["ep"] for r in bad.evidence] == [4, 8]
    assert bad.evidence[1]["max_mean_lo"] == pytest.approx(2.19)


def test_per_layer_change_and_batch_choice():
    t = _table({(1, 4): (2.0, 1.0), (1, 8): (2.0, 1.0), (1, 16): (2.0, 1.0), (2, 4): (3.0, 1.0), (2, 8): (3.3, 1.0)},
               layer_values={(1, 4): 4.0, (1, 8): 5.0, (1, 16): 4.5, (2, 4): 1.0, (2, 8): 1.0})
    v = ep_invariance(t)  # B=1 has the most N
    s = v.summary[0]
    assert s["batch"] == 1 and s["eps"] == "4,8,16" and s["verdict"] == "intrinsic"
    assert s["layer_change_max"] == pytest.approx(0.25) and s["worst_layer"] == 0 and s["layers_over"] == 1
    assert v.tables["layers"][0]["max_mean_change"] == pytest.approx(0.25)
    v2 = ep_invariance(t, batch=2)
    assert v2.summary[0]["max_mean_change"] == pytest.approx(0.1) and v2.verdict == "placement-sensitive"
    with pytest.raises(DodocoError, match="batch B=4 is not in the EP scan"):
        ep_invariance(t, batch=4)


def test_single_ep_is_undetermined():
    v = ep_invariance(_table({(1, 4): (2.0, 1.0)}))
    assert v.verdict == "undetermined" and v.notes


def _direct_max_mean(counts, N, seed=0):
    """Independent: steps of N sequences in step_order, per-layer max/mean, mean over layers and steps."""
    n = counts.shape[0] // N
    steps = counts[step_order(counts.shape[0], seed)][: n * N].astype(np.int64).reshape(
        (n, N) + counts.shape[1:]).sum(1)
    return float(max_mean(steps).mean(axis=1).mean())


def test_identical_sequences_are_intrinsic():
    row = np.array([[9, 1, 1, 1, 3, 1, 1, 7]] * 2, dtype=np.uint32)  # [L=2, E=8]
    counts = np.broadcast_to(row, (32, 2, 8)).copy()
    v = ep_invariance(ep_scan(counts, ep=(2, 4, 8), batch=(1,), model="m", condition="prose", seq_len=8).to_table())
    assert v.verdict == "intrinsic"
    assert v.summary[0]["max_mean_change"] == pytest.approx(0.0, abs=1e-12)
    assert v.evidence[0]["max_mean"] == pytest.approx(9 / 3)


def test_rotating_hot_expert_is_placement_sensitive_and_matches_direct():
    E, S = 8, 64
    counts = np.ones((S, 1, E), dtype=np.uint32)
    counts[np.arange(S), 0, np.arange(S) % E] = 20  # each sequence has its own hot expert
    v = ep_invariance(ep_scan(counts, ep=(2, 4, 8), batch=(1,), model="m", condition="prose", seq_len=8).to_table())
    assert v.verdict == "placement-sensitive"
    direct = [_direct_max_mean(counts, N) for N in (2, 4, 8)]
    assert [r["max_mean"] for r in v.evidence] == pytest.approx(direct)
    assert v.summary[0]["max_mean_change"] == pytest.approx((max(direct) - min(direct)) / min(direct))


def test_scan_table_of_two_runs_is_refused_naming_both():
    t = pa.concat_tables([_table({(1, 4): (2, 1), (1, 8): (2, 1)}, model="a", seq_len=64),
                          _table({(1, 4): (2, 1), (1, 8): (2, 1)}, model="b", seq_len=128)])
    with pytest.raises(DodocoError, match=r"mixes runs: a/prose/L64, b/prose/L128"):
        ep_invariance(t)


def test_missing_placement_is_named():
    with pytest.raises(DodocoError, match="no prefill rows for placement 'eplb'"):
        ep_invariance(_table({(1, 4): (2, 1)}), placement="eplb")
