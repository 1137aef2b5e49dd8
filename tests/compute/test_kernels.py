"""Expert shapes by activation, the kernels on the CPU against hand-computed and float64 answers, and
Megatron's fused MoE plumbing that runs without a GPU."""

import numpy as np
import pytest
import torch

from dodoco.compute.features import ExpertShape, features, pad_loads, roofline_ms
from dodoco.compute.kernels import ExpertBench, activate, check_kernels
from dodoco.compute.megatron import fused_routing, fused_status
from dodoco.compute.shapes import SHAPES, resolve_shape
from dodoco.errors import DodocoError


def test_relu2_shape_by_hand():
    """Ungated: up [H -> I], 4 H I FLOPs a token, 2 H I weights; gated: up [H -> 2I], 6 H I, 3 H I."""
    r, g = ExpertShape(10, 3, act="relu2"), ExpertShape(10, 3)
    assert r.gemms == ((3, 10), (10, 3)) and g.gemms == ((6, 10), (10, 3))
    assert (r.flops_per_token, g.flops_per_token) == (120, 180)
    assert (r.weight_bytes, g.weight_bytes) == (2 * 60, 2 * 90)
    assert (r.act_bytes_per_token, g.act_bytes_per_token) == (2 * (20 + 12), 2 * (20 + 18))
    assert r.label() == "ReLU^2 H=10 I=3" and g.label() == "SwiGLU H=10 I=3"
    assert r != g and ExpertShape.of(r.to_dict()) == r and ExpertShape.of({"hidden": 10, "width": 3}) == g


def test_relu2_features_and_floor_by_hand():
    """One expert of 5 tokens at H=10, I=3: 600 FLOPs unpadded; weights 120 bytes; up GEMM N = I."""
    shape = ExpertShape(10, 3, act="relu2")
    t, v = pad_loads([[5, 0]])
    f = features(t, v, shape, tile_m=4, tile_n=2, sms=1)
    assert f.case["flops"][0] * 1e9 == pytest.approx(600)
    assert f.case["wbytes"][0] * 1e9 == pytest.approx(120)
    # up: 2 row tiles x ceil(3 / 2) column tiles; down: 2 x ceil(10 / 2)
    assert f.gemm["waves"][0].tolist() == pytest.approx([4 * 10 / 1e3, 10 * 3 / 1e3])
    floor = roofline_ms(t, v, shape, tflops=1e-9, hbm_GBps=1e9)  # 1000 FLOP/s: FLOPs dominate
    assert floor[0] == pytest.approx(600 / 1000 * 1e3)


def test_bad_activation_is_one_line():
    with pytest.raises(DodocoError, match="activation 'gelu'.*swiglu"):
        ExpertShape(8, 8, act="gelu")


def test_activation_by_hand():
    up = torch.tensor([[-1.0, 2.0, 3.0, -4.0]])
    assert activate(up, ExpertShape(4, 4, act="relu2")).tolist() == [[0.0, 4.0, 9.0, 0.0]]
    # SwiGLU: silu of the first I columns times the rest; silu(-1) = -0.268941, silu(2) = 1.761594
    assert activate(up, ExpertShape(4, 2)).tolist()[0] == pytest.approx([-0.806824, -7.046377], rel=1e-5)


def test_every_kernel_matches_float64_on_the_cpu():
    errs = check_kernels("cpu")
    assert set(errs) == {"grouped_mm", "loop", "grouped_mm relu2", "loop relu2"}
    assert all(e < 1e-2 for e in errs.values())


def test_the_activation_changes_the_output():
    """The same weights and tokens through ReLU^2 and SwiGLU benches differ (an ignored act would not)."""
    outs = []
    for act in ("relu2", "swiglu"):
        b = ExpertBench(ExpertShape(32, 16, act=act), 2, "cpu")
        x, offs, host = b.inputs([3, 4])
        outs.append(b.call("grouped_mm", x, offs, host))
        assert torch.allclose(outs[-1].float(), b.call("loop", x, offs, host).float(), rtol=2e-2, atol=2e-2)
    assert not torch.allclose(outs[0].float(), outs[1].float(), atol=1e-2)


def test_nemotron_is_relu2_and_the_others_gated():
    assert SHAPES["nemotron-30b"][0].act == "relu2"
    assert {n for n, (s, _) in SHAPES.items() if s.act == "relu2"} == {"nemotron-30b"}
    assert resolve_shape("nemotron-30b")[0].flops_per_token == 4 * 2688 * 1856


def test_fused_routing_delivers_each_experts_load_in_a_shuffled_order():
    loads = [3, 0, 5, 1]
    rmap, probs, valid = fused_routing(loads, "cpu", seed=1)
    assert rmap.shape == (9, 1) and probs.shape == (9, 1) and int(valid) == 9
    assert np.bincount(rmap[:, 0].numpy(), minlength=4).tolist() == loads
    assert rmap[:, 0].tolist() != sorted(rmap[:, 0].tolist())  # tokens arrive mixed, as after a dispatch
    assert probs.dtype == torch.float32 and bool((probs == 1).all())


def test_fused_moe_says_why_it_does_not_run():
    assert "TEGroupedMLP" in fused_status(ExpertShape(8, 8), "cpu")
    assert "CUDA" in fused_status(ExpertShape(8, 8, act="relu2"), "cpu")


def test_a_checkpoint_config_names_its_expert_activation():
    """Nemotron-H's config (mlp_hidden_act relu2) gives ungated experts; a Qwen3 MoE config, SwiGLU; and a
    run's recorded shape is read back with its activation (runs recorded before it: SwiGLU)."""
    from types import SimpleNamespace

    from dodoco.compute.shapes import shape_of_run
    from dodoco.models.load import expert_shape

    nemo = SimpleNamespace(hidden_size=2688, moe_intermediate_size=1856, mlp_hidden_act="relu2")
    qwen = SimpleNamespace(hidden_size=2048, moe_intermediate_size=768, hidden_act="silu")
    assert expert_shape(nemo) == {"hidden_size": 2688, "moe_intermediate_size": 1856, "expert_act": "relu2"}
    assert expert_shape(qwen)["expert_act"] == "swiglu"
    for details, act in (
        (expert_shape(nemo), "relu2"),
        ({"hidden_size": 2688, "moe_intermediate_size": 1856}, "swiglu"),
    ):
        manifest = SimpleNamespace(to_dict=lambda d=details: {"model": {"details": d}})
        shape, label = shape_of_run(SimpleNamespace(manifest=manifest, model="hub/x", path="r"))
        assert shape == ExpertShape(2688, 1856, act=act) and label.startswith(shape.label())


def test_act_flag_predicts_ungated_experts(tmp_path):
    """--hidden/--width --act relu2 is Nemotron's named shape; it costs less than SwiGLU of the same H and I;
    --act without a size, or beside a named shape, is one line."""
    from dodoco.compute.api import ComputeConfig, compute

    loads = tmp_path / "l.json"
    loads.write_text("[[100, 50, 0, 7], [3, 3, 3, 3]]")
    ms = {}
    for key, kw in {
        "relu2": dict(hidden=2688, width=1856, act="relu2"),
        "swiglu": dict(hidden=2688, width=1856),
        "named": dict(shape="nemotron-30b"),
    }.items():
        ms[key] = compute(ComputeConfig(loads=str(loads), gpu="h100", **kw)).predicted_ms
    assert ms["relu2"] == ms["named"] and all(r < s for r, s in zip(ms["relu2"], ms["swiglu"]))
    with pytest.raises(DodocoError, match="--act relu2 needs --hidden H and --width I"):
        compute(ComputeConfig(loads=str(loads), gpu="h100", act="relu2"))
    with pytest.raises(DodocoError, match="not both"):
        compute(ComputeConfig(loads=str(loads), gpu="h100", act="relu2", shape="deepseek-v3"))
