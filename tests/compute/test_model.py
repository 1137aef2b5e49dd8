"""The compute model: features by hand, NNLS against brute force, form recovery, selection, files."""

import itertools
import json

import numpy as np
import pytest

from dodoco.compute.features import ExpertShape, features, pad_loads, roofline_ms, torch_tiles
from dodoco.compute.fit import FORMS, fit_form, kfold_errors, nnls, predict_form
from dodoco.compute.grid import calibration_grid
from dodoco.compute.model import ComputeModel, calibrate, load_model, scored_ranks
from dodoco.host import gpu_key
from dodoco.errors import DodocoError

SHAPE = ExpertShape(256, 64)


def test_features_by_hand():
    t, v = pad_loads([[0, 1, 130], [5]])
    F = features(t, v, SHAPE, tile_m=128, tile_n=128, sms=2)
    # rank 0: 131 tokens, 3 experts, 2 non-empty; rows after tiles: 0, 128, 256
    assert F.case["tokens"].tolist() == [131, 5]
    assert F.case["groups"].tolist() == [3, 1] and F.case["nonempty"].tolist() == [2, 1]
    assert F.case["flops"][0] == pytest.approx(131 * 6 * 256 * 64 / 1e9)
    assert F.case["pflops"][0] == pytest.approx((128 + 256) * 6 * 256 * 64 / 1e9)
    assert F.case["wbytes"][0] == pytest.approx(2 * 3 * 256 * 64 * 2 / 1e9)
    # up GEMM N=128 (1 tile column), down GEMM N=256 (2 columns); tiles of rank 0: (1+2) row tiles
    assert F.gemm["waves"][0].tolist() == [
        pytest.approx(np.ceil(3 * 1 / 2) * 256 / 1e3),
        pytest.approx(np.ceil(3 * 2 / 2) * 64 / 1e3),
    ]
    # padded slot of rank 1 contributes nothing
    assert F.group["wbytes"][1].sum() == pytest.approx(3 * 256 * 64 * 2 / 1e9)


def test_torch_tile_choice_by_hand():
    """torch._grouped_mm's rule (GroupMM.cu): 64x128 tiles when rows / groups <= 128 (empty groups
    counted) or N <= 128, else 128x256; clusters of two tiles along M, so each expert's row tiles round
    up to an even count. A rule on the largest group, on non-empty groups only, with the tiles swapped,
    or without the cluster fails here."""
    shape = ExpertShape(256, 128)  # up: N=256, K=256; down: N=256, K=128
    t, v = pad_loads([[200, 0], [200, 100]])
    f = torch_tiles(t, v, shape, sms=132)
    # rank 0: 100 rows per group (the empty group counts) -> small; rows padded to 2 x 64: 256; N to 128: 256
    assert (f["small"][0], f["large"][0]) == (1.0, 0.0)
    assert f["pflops_small"][0] == pytest.approx(256 * 2 * 256 * (256 + 128) / 1e9)
    assert f["waves_small"][0] == pytest.approx((256 + 128) / 1e3)  # 4 x 2 tiles per GEMM: one wave each
    # rank 1: 150 rows per group -> large; rows padded to 2 x 128: 256 + 256 (100 rows fill a cluster too)
    assert (f["small"][1], f["large"][1], f["pflops_small"][1]) == (0.0, 1.0, 0.0)
    assert f["pflops_large"][1] == pytest.approx(512 * 2 * 256 * (256 + 128) / 1e9)
    # N <= 128 forces the small tile on that GEMM alone (down: N = H = 128)
    f = torch_tiles(t, v, ExpertShape(128, 128), sms=1)
    assert (f["small"][1], f["large"][1]) == (0.5, 0.5)
    assert f["waves_large"][1] == pytest.approx(4 * 128 / 1e3)  # up: 2 + 2 row tiles x 1 column, K = 128
    assert f["waves_small"][1] == pytest.approx(6 * 128 / 1e3)  # down: 4 + 2 row tiles x 1 column, K = 128


def test_cluster_rounds_each_expert_not_the_rank():
    """In the large regime (151 rows per group) an expert of 600 tokens holds 3 clusters (6 tiles of 128
    rows) and three experts of 1 token each hold a cluster each: 12 tiles, where tiles without the cluster
    count 8 (so would a rank-wide rounding); one expert of 257 tokens holds 2 clusters (4 tiles)."""
    shape = ExpertShape(512, 512)  # up N = 1024, down N = 512: both large
    t, v = pad_loads([[600, 1, 1, 1], [257]])
    f = torch_tiles(t, v, shape, sms=1)
    up_cols, down_cols = 1024 // 256, 512 // 256
    assert f["waves_large"][0] * 1e3 == pytest.approx((6 + 6) * (up_cols + down_cols) * 512)
    assert f["waves_large"][1] * 1e3 == pytest.approx(4 * (up_cols + down_cols) * 512)


def test_forms_are_scored_on_uneven_ranks_in_the_target_range():
    t, v = pad_loads([[100, 100], [150, 50], [50, 0], [9000, 1000]] * 30)
    assert scored_ranks(t, v).tolist() == [False, True, False, False] * 30
    few, fv = pad_loads([[150, 50], [100, 100]])
    assert scored_ranks(few, fv).all()  # fewer than MIN_SCORED qualify: every rank scores


def test_roofline_floor_by_hand():
    t, v = pad_loads([[1000, 0]])
    ms = roofline_ms(t, v, SHAPE, tflops=100.0, hbm_GBps=1000.0)
    flops_ms = 1000 * 6 * 256 * 64 / 100e12 * 1e3
    bytes_ms = (3 * 256 * 64 * 2 + 1000 * 2 * 256 * 2) / 1000e9 * 1e3
    assert ms[0] == pytest.approx(max(flops_ms, bytes_ms))


@pytest.mark.parametrize("seed", range(5))
def test_nnls_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(30, 4)), rng.normal(size=30)
    best = None
    for k in range(5):
        for subset in itertools.combinations(range(4), k):
            x = np.zeros(4)
            if subset:
                x[list(subset)] = np.linalg.lstsq(A[:, subset], b, rcond=None)[0]
            if np.all(x >= -1e-12):
                r = np.sum((A @ x - b) ** 2)
                best = r if best is None or r < best else best
    x = nnls(A, b)
    assert np.all(x >= 0)
    assert np.sum((A @ x - b) ** 2) == pytest.approx(best, rel=1e-9)


def _grid_features(tile=128):
    loads = [l for _, l in calibration_grid(max_tokens=8192, random_cases=8)]
    t, v = pad_loads(loads)
    return t, v, features(t, v, SHAPE, tile, 128, 8)


@pytest.mark.parametrize("form", ["gemm-roofline", "group-roofline", "roofline"])
def test_a_form_recovers_its_own_coefficients(form):
    t, v, F = _grid_features()
    f = FORMS[form]
    true = np.linspace(0.5, 2.0, len(f.params)) * np.array(
        [{"one": 0.01, "nonempty": 0.001, "abytes": 1.0}.get(p, 1.0) for p in f.linear]
        + [{"wbytes": 300.0, "pflops": 2.0, "waves": 0.01}[m] for m in f.alternatives]
    )
    y = predict_form(f, F, true)
    got = fit_form(f, F, y)
    assert np.allclose(predict_form(f, F, got), y, rtol=1e-6)


def test_held_out_selection_prefers_the_true_form_and_the_true_tile():
    loads = [l for _, l in calibration_grid(max_tokens=8192, random_cases=16)]
    shapes = [SHAPE] * len(loads)
    t, v = pad_loads(loads)
    F = features(t, v, SHAPE, 64, 128, 8)
    f = FORMS["gemm-roofline"]
    y = predict_form(f, F, np.array([0.01, 0.0005, 1.0, 300.0, 2.0]))
    y = y * np.exp(np.random.default_rng(0).normal(0, 0.01, y.shape))
    m = calibrate(loads, shapes, y, kernel="grouped_mm", device="NVIDIA H100 80GB HBM3", sms=8)
    assert (m.form, m.tile_m) in {("gemm-roofline", 64), ("gemm-waves", 64)}
    tokens = next(r for r in m.info["selection"] if r["form"] == "tokens")
    assert m.info["held_out"]["p90_abs_err"] < 0.05 < tokens["p90_abs_err"]
    assert m.info["acts"] == ["swiglu"] and m.acts == ("swiglu",)


def test_kfold_never_predicts_a_case_with_itself():
    """A form fitted with the case inside would give 0 error on noise-free data of a different form;
    held out, the tokens form cannot fit a roofline grid."""
    t, v, F = _grid_features()
    y = predict_form(FORMS["gemm-roofline"], F, np.array([0.01, 0.0005, 1.0, 300.0, 2.0]))
    e = kfold_errors(FORMS["tokens"], F, y, folds=5)
    assert np.median(np.abs(e)) > 0.05


def test_gpu_key_never_reads_the_memory_type():
    assert gpu_key("NVIDIA H100 80GB HBM3") == "h100"
    assert gpu_key("NVIDIA H200") == "h200"
    assert gpu_key("NVIDIA H100 NVL") == "h100"
    assert gpu_key("NVIDIA A100-SXM4-80GB") == "a100"
    assert gpu_key("NVIDIA GB200") == "gb200"
    assert gpu_key("cpu") == "cpu"


def test_a_model_round_trips_and_says_when_used_for_another_gpu(tmp_path):
    loads = [l for _, l in calibration_grid(max_tokens=4096, random_cases=4)]
    y = np.array([0.01 + 1e-5 * np.sum(l) for l in loads])
    m = calibrate(
        loads,
        [SHAPE] * len(loads),
        y,
        kernel="loop",
        device="NVIDIA H200",
        sms=132,
        info={"torch": "2.11.0", "date": "2026-12-06"},
    )
    p = tmp_path / "c.json"
    p.write_text(json.dumps(m.to_dict()))
    back = load_model(p)
    assert np.allclose(back.predict([[10, 0, 300]], SHAPE), m.predict([[10, 0, 300]], SHAPE))
    assert "ANOTHER GPU" not in back.label("NVIDIA H200")
    assert "ANOTHER GPU's calibration used for h100" in back.label("NVIDIA H100 80GB HBM3")
    assert back.predict([[0, 0]], SHAPE).tolist() == [0.0]


@pytest.mark.parametrize(
    "loads, message",
    [
        ([[1, -2]], "hold -2"),
        ([[1.5]], "fraction"),
        ([], "no rank"),
        ([[]], "empty rank"),
        ("x", "list of lists"),
        ([["a"]], "not a list of numbers"),
        ([[float("nan")]], "not a list of numbers"),
    ],
)
def test_bad_loads_are_one_line(loads, message):
    with pytest.raises(DodocoError, match=message):
        pad_loads(loads)


@pytest.mark.parametrize(
    "bad",
    [
        {"schema": "x"},
        {"schema": "dodoco.compute/1", "form": "nope"},
        {"schema": "dodoco.compute/1", "form": "tokens", "coef": [1.0]},
        {"schema": "dodoco.compute/1", "form": "tokens", "coef": [1.0, -1.0]},
    ],
)
def test_bad_calibration_files_are_one_line(bad):
    with pytest.raises(DodocoError):
        ComputeModel.from_dict(bad)


def test_routing_vs_even_bands_by_hand():
    """Ratios routing / even: 0.5 at 2 tokens/expert, 0.99 and 1.2 at 20, 0.97 at 100 (faster: < 0.98)."""
    from dodoco.compute.holdout import routing_vs_even

    def pair(loads, ms, even_ms):
        return {"loads": loads, "ms": ms}, {"loads": [sum(loads) // len(loads)] * len(loads), "ms": even_ms}

    pairs = [pair([4, 0], 1.0, 2.0), pair([40, 0], 0.99, 1.0), pair([30, 10], 1.2, 1.0), pair([150, 50], 0.97, 1.0)]
    rows = {r["band"]: r for r in routing_vs_even(pairs)}
    assert rows["all"] == {"band": "all", "n": 4, "faster": 2, "median_ratio": pytest.approx(0.98), "min_ratio": 0.5}
    assert (rows["0-4 tokens/expert"]["n"], rows["0-4 tokens/expert"]["faster"]) == (1, 1)
    assert (rows["4-16 tokens/expert"]["n"], rows["4-16 tokens/expert"]["faster"]) == (0, 0)
    assert rows["16-64 tokens/expert"]["n"] == 2 and rows["16-64 tokens/expert"]["faster"] == 0
    assert rows["64-max tokens/expert"] == {
        "band": "64-max tokens/expert",
        "n": 1,
        "faster": 1,
        "median_ratio": 0.97,
        "min_ratio": 0.97,
    }


def test_label_warns_for_an_activation_outside_the_grid():
    """A calibration fitted on SwiGLU shapes alone says so when it predicts ReLU^2 experts; one whose grid held
    ReLU^2 does not; the H200's shipped ones (made before ``acts`` was recorded) count as SwiGLU-only, the
    H100's (a grid with Nemotron's shape) hold both."""
    import dataclasses

    from dodoco.compute.model import resolve_model

    shipped = resolve_model("NVIDIA H200", "grouped_mm")
    assert shipped.acts == ("swiglu",)
    assert "ReLU^2 experts outside its grid (SwiGLU only" in shipped.label("NVIDIA H200", "relu2")
    assert "outside" not in shipped.label("NVIDIA H200", "swiglu")
    both = dataclasses.replace(shipped, info={**shipped.info, "acts": ["relu2", "swiglu"]})
    assert "outside" not in both.label(act="relu2")
    for kernel in ("grouped_mm", "loop"):
        h100 = resolve_model("NVIDIA H100 80GB HBM3", kernel)
        assert h100.acts == ("relu2", "swiglu") and "outside" not in h100.label("NVIDIA H100 80GB HBM3", "relu2")
