"""GEMM table interpolation and the EP scan of dispatch + expert compute."""

import json

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.simulate.cluster import AlltoallTimer, Cluster
from dodoco.simulate.gemm import GemmTable, load_gemm_table, measure_gemm_table, rank_compute
from dodoco.simulate.layer import simulate_ep

TABLE = GemmTable(np.array([0.0, 100.0, 200.0]), np.array([0.0, 1.0, 1.5]), 2048, 768)


def test_table_interpolates_and_extrapolates():
    np.testing.assert_allclose(TABLE.expert_ms([0, 50, 150, 300]), [0.0, 0.5, 1.25, 2.0])
    scaled = TABLE.for_shape(4096, 768)
    assert scaled.expert_ms(100) == pytest.approx(2.0)
    assert TABLE.label().startswith("measured") and scaled.label().startswith("nominal: ")
    assert "measured at H=2048 I=768, scaled by FLOPs x2 to H=4096 I=768" in scaled.label()
    np.testing.assert_allclose(rank_compute(np.array([100, 200, 0, 50]), [[0, 1], [2, 3]], TABLE), [2.5, 0.5])


def test_table_file_roundtrip_and_errors(tmp_path):
    t = measure_gemm_table(16, 8, tokens=(0, 4, 8), experts=2, iters=2, device="cpu", dtype="float32")
    assert t["ms_per_expert"][0] == 0.0 and all(x > 0 for x in t["ms_per_expert"][1:])
    f = tmp_path / "g.json"
    f.write_text(json.dumps(t))
    assert load_gemm_table(f).hidden == 16
    f.write_text(json.dumps({**t, "tokens_per_expert": [0, 8, 4]}))
    with pytest.raises(DodocoError, match="must increase"):
        load_gemm_table(f)


def test_simulate_ep_balanced_vs_skewed():
    c = AlltoallTimer(Cluster(name="t", gpus_per_node=4, nvlink_bw=100.0, nic_bw=10.0))
    S, L, E = 16, 1, 8
    flat = np.full((S, L, E), 10, dtype=np.uint32)
    hot = flat.copy()
    hot[:, :, 0] = 70  # expert 0 (rank 0) is hot
    rows_f, skipped = simulate_ep(flat, [2, 4, 8, 16, 32], 1, c, row_bytes=1 << 20, gemm=TABLE)
    rows_h, _ = simulate_ep(hot, [2, 4, 8], 1, c, row_bytes=1 << 20, gemm=TABLE)
    assert [n for n, _ in skipped] == [16, 32]  # 16 > E=8 experts; 32 > S=16 sequences
    assert "E=8" in skipped[0][1] and "needs 32 sequences" in skipped[1][1]
    assert all(r["part"] == "all" and r["nvlink"].startswith("nominal") for r in rows_f)
    for r in rows_f:
        assert r["imbalance_share"] == pytest.approx(0.0, abs=1e-12) and r["compute_straggler_ms"] == 0.0
    for r in rows_h:
        assert r["recv_skew"] > 1.2 and r["imbalance_share"] > 0.05 and r["compute_straggler_ms"] > 0
        assert r["layer_ms"] == pytest.approx(r["dispatch_ms"] + r["compute_ms"] + r["combine_ms"])
    assert rows_h[2]["nodes"] == 2 and not np.isnan(rows_h[2]["hier_ms"]) and rows_h[2]["nic"].startswith("nominal")


def test_simulate_ep_fitted_placement_is_evaluated_held_out():
    c = AlltoallTimer(Cluster(name="t", gpus_per_node=4, nvlink_bw=100.0, nic_bw=10.0))
    rng = np.random.default_rng(0)
    hot = rng.poisson(np.r_[60.0, np.full(7, 10.0)], (16, 1, 8)).astype(np.uint32)
    rows, skipped = simulate_ep(hot, [4, 8, 16], 1, c, row_bytes=1 << 20, placement="eplb", dispatchers=("a", "b"))
    assert [(r["N"], r["dispatcher"]) for r in rows] == [(4, "a"), (4, "b"), (8, "a"), (8, "b")]
    assert all(r["part"] == "held-out" and r["cases"] == 8 // r["N"] for r in rows)  # 8 held-out sequences
    assert skipped == [(16, "needs 16 sequences (EP 16 x batch 1), the run has 8 in the held-out half (8 of 16; "
                            "the other half fits eplb)")]
