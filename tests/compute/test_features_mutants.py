"""Hand-computed cases that fail the wrong implementations of the compute model's features, roofline
and load reader which the mutation bench found passing the other tests (bench/bench_mutation.py)."""

import numpy as np
import pytest

from dodoco.compute.features import ExpertShape, features, features_many, pad_loads, roofline_ms, torch_tiles
from dodoco.errors import DodocoError

# H=10, I=3, ungated: up GEMM (N=3, K=10), down (N=10, K=3); 120 FLOPs a token, 60 weights (120 bytes)
SHAPE = ExpertShape(10, 3, act="relu2")


def test_padded_flops_at_each_tile_height_by_hand():
    """Loads [5, 0, 130]: rows padded to 64 -> 64 + 0 + 192, to 128 -> 128 + 256, to 256 -> 256 + 256."""
    t, v = pad_loads([[5, 0, 130]])
    case = features(t, v, SHAPE).case
    for bm, rows in ((64, 256), (128, 384), (256, 512)):
        assert case[f"pflops{bm}"][0] * 1e9 == pytest.approx(rows * 120, rel=1e-12)


def test_counts_per_rank_with_a_ragged_rank():
    """Two ranks, the second with one expert (padded): groups [3, 1], nonempty [2, 1], tokens [135, 7]."""
    t, v = pad_loads([[5, 0, 130], [7]])
    assert t.dtype == np.int64 and t.tolist() == [[5, 0, 130], [7, 0, 0]] and v.tolist()[1] == [True, False, False]
    case = features(t, v, SHAPE).case
    assert case["groups"].tolist() == [3.0, 1.0] and case["nonempty"].tolist() == [2.0, 1.0]
    assert case["tokens"].tolist() == [135.0, 7.0]
    assert case["wbytes"] * 1e9 == pytest.approx([240, 120], rel=1e-12)


def test_defaults_are_the_documented_tiles_and_sms():
    """features() without tile or SM arguments is tile 128 x 128 on 132 SMs, and features_many passes
    every argument through."""
    t, v = pad_loads([[300, 0, 7, 129], [1, 2]])
    a, b = features(t, v, SHAPE), features(t, v, SHAPE, 128, 128, 132)
    for part in ("case", "gemm", "group"):
        for k, x in getattr(a, part).items():
            assert np.array_equal(x, getattr(b, part)[k]), (part, k)
    c, d = features_many(t, v, [SHAPE, SHAPE], 64, 2, 3), features(t, v, SHAPE, 64, 2, 3)
    for k, x in d.gemm.items():
        assert np.array_equal(c.gemm[k], x), k
    e = features_many(t, v, [SHAPE, SHAPE])
    assert np.array_equal(e.gemm["waves"], b.gemm["waves"]) and np.array_equal(e.case["waves"], b.case["waves"])


def test_waves_by_hand_with_ranks_that_differ():
    """Rank [300, 0, 7] on 1 SM, tile 128 x 2: up N=3 -> 2 column tiles, row tiles 3 + 1 = 4, 8 tiles,
    8 waves x K=10; down N=10 -> 5 column tiles, 20 tiles x K=3. Rank [1] -> 2 tiles x 10, 5 x 3."""
    t, v = pad_loads([[300, 0, 7], [1]])
    f = features(t, v, SHAPE, 128, 2, 1)
    assert f.gemm["waves"] * 1e3 == pytest.approx(np.array([[80, 60], [20, 15]]))
    assert f.case["waves"] * 1e3 == pytest.approx([140, 35])
    assert f.gemm["wbytes"] * 1e9 == pytest.approx(np.array([[120, 120], [60, 60]]))  # 60 B per GEMM and expert
    assert f.gemm["pflops"] * 1e9 == pytest.approx(np.array([[512, 512], [128, 128]]) * 60.0)
    assert f.group["one"].tolist() == [[1, 0, 1, 1, 0, 1], [1, 0, 0, 1, 0, 0]]
    assert f.group["wbytes"].shape == (2, 6) and f.group["pflops"][0, 3] * 1e9 == pytest.approx(384 * 60)


def test_roofline_counts_one_token_experts_and_ignores_padding():
    """Two ranks: [1, 0] reads one expert's weights (120 B) and 1 token in and out (2 x 10 x 2 B);
    [4] padded to two slots reads one expert and 4 tokens. Bandwidth 1 GB/s, compute unbounded."""
    t, v = pad_loads([[1, 0], [4]])
    floor = roofline_ms(t, v, SHAPE, tflops=1e9, hbm_GBps=1.0)
    assert floor * 1e6 == pytest.approx([120 + 40, 120 + 160], rel=1e-12)  # ns
    flops = roofline_ms(t, v, SHAPE, tflops=1e-9, hbm_GBps=1e12)  # 1000 FLOP/s: 120 and 480 FLOPs
    assert flops == pytest.approx([120.0, 480.0], rel=1e-13)


def test_torch_tile_regime_at_its_boundary():
    """Mean rows per group exactly 128 takes the small 64 x 128 tile; 129, the large 128 x 256 one; a rank of
    one expert divides by one group, not two."""
    shape = ExpertShape(300, 300)  # up N = 600, down N = 300: both above 128
    t, v = pad_loads([[128, 128], [129, 129], [200]])
    out = torch_tiles(t, v, shape, sms=1)
    assert out["small"].tolist() == [1.0, 0.0, 0.0] and out["large"].tolist() == [0.0, 1.0, 1.0]
    # rank [200] (large): rows padded to a cluster of 2 x 128 = 256; up: ceil(600/256)=3 column tiles x 256,
    # K=300; down: 2 x 256, K=300
    up, down = 256 * 2 * 3 * 256 * 300, 256 * 2 * 2 * 256 * 300
    assert out["pflops_large"][2] * 1e9 == pytest.approx(up + down, rel=1e-12)
    # waves on 1 SM: up 2 row tiles x 3 column tiles = 6 waves x K; down 2 x 2 = 4
    assert out["waves_large"][2] * 1e3 == pytest.approx((6 + 4) * 300)


def test_pad_loads_reads_arrays_whole_floats_and_its_bounds():
    t, v = pad_loads(np.array([[1, 2], [3, 4]]))
    assert t.tolist() == [[1, 2], [3, 4]] and v.all()
    assert pad_loads([[1.0, 2.0]])[0].tolist() == [[1, 2]]
    assert pad_loads([[1 << 40]])[0].tolist() == [[1 << 40]]
    with pytest.raises(DodocoError, match="tokens per expert must be in 0"):
        pad_loads([[(1 << 40) + 1]])
    with pytest.raises(DodocoError, match="list of lists"):
        pad_loads([1, 2])


def test_summary_by_hand():
    """Errors [0.1, -0.2, nan, 0.05]: NaN left out; |e| sorted 0.05, 0.1, 0.2 -> median 0.1, p90 0.18 (linear
    between 0.1 and 0.2 at 0.8 of the way), max 0.2; signed median (bias) 0.05."""
    from dodoco.compute.holdout import summary

    s = summary([0.1, -0.2, float("nan"), 0.05])
    assert s["n"] == 3 and s["median_abs_err"] == pytest.approx(0.1) and s["p90_abs_err"] == pytest.approx(0.18)
    assert s["max_abs_err"] == pytest.approx(0.2) and s["bias"] == pytest.approx(0.05)
    assert summary([]) == {"n": 0, "median_abs_err": None, "p90_abs_err": None, "max_abs_err": None, "bias": None}


class _TokensModel:
    """A stand-in model: 1 ms per token for SwiGLU, 2 for ReLU^2 (so a row predicted with the wrong shape
    or in the wrong order shows)."""

    def predict_padded(self, t, valid, shape):
        return np.where(valid, t, 0).sum(-1) * (2.0 if shape.act == "relu2" else 1.0)


def test_held_out_keeps_each_rows_shape_and_order():
    from dodoco.compute.holdout import held_out

    g = ExpertShape(8, 8)
    rows = [
        {"loads": [10, 0], "shape": g, "ms": 5.0},  # predicted 10: +100%
        {"loads": [3], "shape": SHAPE, "ms": 6.0},  # predicted 6: 0%
        {"loads": [4, 4], "shape": g, "ms": 10.0},  # predicted 8: -20%
    ]
    assert held_out(_TokensModel(), rows).tolist() == pytest.approx([1.0, 0.0, -0.2])


def test_error_table_groups_by_hand():
    """Three ranks: 200 tokens at EP 8 (target), 100 tokens at EP 8 (below the target's tokens), 9000 at EP 64
    (above): the target row holds only the first; the bins and EP rows hold their own."""
    from dodoco.compute.holdout import error_table

    rows = [{"loads": [200], "N": 8}, {"loads": [60, 40], "N": 8}, {"loads": [9000], "N": 64}]
    table = error_table(rows, {"m": [0.1, -0.3, 0.5]})
    by = {r["group"]: r for r in table}
    assert by["target: 128-8192 tokens/rank, EP 4-64"]["n"] == 1
    assert by["target: 128-8192 tokens/rank, EP 4-64"]["max_abs_err"] == pytest.approx(0.1)
    assert by["all ranks"]["n"] == 3 and by["all ranks"]["max_abs_err"] == pytest.approx(0.5)
    assert by["tokens/rank 1-127"]["bias"] == pytest.approx(-0.3)
    assert by["tokens/rank 128-511"]["n"] == 1 and by["tokens/rank 8193-max"]["n"] == 1
    assert by["EP 8"]["n"] == 2 and by["EP 64"]["bias"] == pytest.approx(0.5)
    assert [r["group"] for r in table][:2] == ["target: 128-8192 tokens/rank, EP 4-64", "all ranks"]
    edge = error_table([{"loads": [128], "N": 4}, {"loads": [8192], "N": 64}], {"m": [0.1, 0.2]})
    assert {r["group"]: r for r in edge}["target: 128-8192 tokens/rank, EP 4-64"]["n"] == 2


def test_default_column_tile_and_sm_count_show_at_their_edges():
    """N = 129 takes 2 column tiles of 128 (1 of 129); 133 row tiles take 2 waves of 132 SMs (1 of 133)."""
    t, v = pad_loads([[133 * 128]])
    wide = ExpertShape(129, 129, act="relu2")  # up N = I = 129, down N = H = 129
    assert features(t, v, wide).gemm["waves"][0] * 1e3 == pytest.approx([3 * 129, 3 * 129])  # 266 tiles: 3 waves
    assert features_many(t, v, [wide]).gemm["waves"][0] * 1e3 == pytest.approx([3 * 129, 3 * 129])
    narrow = ExpertShape(128, 128, act="relu2")  # 133 tiles: 2 waves of 132
    assert features(t, v, narrow).gemm["waves"][0] * 1e3 == pytest.approx([2 * 128, 2 * 128])
    assert features_many(t, v, [narrow]).gemm["waves"][0] * 1e3 == pytest.approx([2 * 128, 2 * 128])
    t1, v1 = pad_loads([[129]])
    assert features_many(t1, v1, [narrow]).case["pflops"][0] == features(t1, v1, narrow, 128).case["pflops"][0]


@pytest.mark.parametrize("bad", [{"hidden": True}, {"hidden": 8.0}, {"hidden": 0}, {"width": (1 << 20) + 1}])
def test_shape_sizes_are_whole_numbers_in_range(bad):
    with pytest.raises(DodocoError, match="must be a whole number in 1.."):
        ExpertShape(**{"hidden": 8, "width": 8, **bad})


def test_shape_size_edges_and_round_trip():
    assert ExpertShape(1, 1 << 20).weight_bytes == 3 * (1 << 20) * 2
    s = ExpertShape(7, 5, act="relu2")
    assert s.to_dict() == {"hidden": 7, "width": 5, "act": "relu2"} and ExpertShape.of(s.to_dict()) == s
    assert ExpertShape.of({"hidden": 7, "width": 5}).act == "swiglu" and s.label().startswith("ReLU^2 ")


def test_error_table_bin_edges_and_ranks_without_an_ep():
    """511 and 128 tokens sit in the 128-511 bin, 127 below it; a rank recorded without an EP is in no EP row
    and outside the target."""
    from dodoco.compute.holdout import error_table

    rows = [{"loads": [128]}, {"loads": [511], "N": 4}, {"loads": [127], "N": 4}]
    by = {r["group"]: r for r in error_table(rows, {"m": [0.3, 0.1, 0.2]}) if r["model"] == "m"}
    assert by["tokens/rank 128-511"]["n"] == 2 and by["tokens/rank 1-127"]["n"] == 1
    assert by["target: 128-8192 tokens/rank, EP 4-64"]["n"] == 1 and {g for g in by if g.startswith("EP")} == {"EP 4"}


def test_routing_vs_even_band_edges_by_hand():
    """Tokens per expert exactly 4 and 16 open their bands; a one-expert rank divides by one; a ratio exactly
    0.98 is not faster; an empty band says None."""
    from dodoco.compute.holdout import routing_vs_even

    pairs = [
        ({"loads": [2, 2], "ms": 0.98}, {"ms": 1.0}),  # 2 tokens/expert, ratio 0.98: not faster
        ({"loads": [4], "ms": 0.5}, {"ms": 1.0}),  # 4 tokens/expert (one expert): band 4-16, faster
        ({"loads": [16, 16], "ms": 2.0}, {"ms": 1.0}),  # 16: band 16-64
    ]
    bands = {b["band"]: b for b in routing_vs_even(pairs)}
    assert bands["all"]["n"] == 3 and bands["all"]["faster"] == 1 and bands["all"]["min_ratio"] == pytest.approx(0.5)
    assert bands["0-4 tokens/expert"]["n"] == 1 and bands["0-4 tokens/expert"]["faster"] == 0
    assert bands["4-16 tokens/expert"]["n"] == 1 and bands["16-64 tokens/expert"]["n"] == 1
    assert bands["64-max tokens/expert"] == {
        "band": "64-max tokens/expert",
        "n": 0,
        "faster": 0,
        "median_ratio": None,
        "min_ratio": None,
    }
