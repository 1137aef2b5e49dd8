"""Captured experts equal each router's own output, for all five families; counts sum to tokens x K."""

import numpy as np
import pytest
import torch

from dodoco.errors import DodocoError
from dodoco.models.tiny import FAMILIES, build_tiny
from dodoco.observe.capture import RoutingCapture, capture

VOCAB = 512


def _router_indices(model):
    """Hook every router (``*.gate`` returning (logits, weights, indices)): the independent reference."""
    seen = []
    handles = []
    for name, module in model.named_modules():
        if name.endswith(".gate") and hasattr(module, "top_k"):
            handles.append(module.register_forward_hook(lambda m, a, out: seen.append(out[2].detach().clone())))
    return seen, handles


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_model(request):
    return request.param, build_tiny(request.param, VOCAB, seed=3)


def test_captured_indices_equal_router_output(family_model):
    family, model = family_model
    spec = FAMILIES[family]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (3, 24), generator=g)
    mask = torch.ones(3, 24, dtype=torch.long)
    mask[1, :5] = 0  # left padding on sequence 1
    seen, handles = _router_indices(model)
    try:
        with torch.no_grad(), capture(model, traces=True) as cap:
            model(input_ids=ids, attention_mask=mask)
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == cap.num_layers == len(cap.layers)
    topk, offsets = cap.traces()
    keep = mask.reshape(-1).bool().numpy()
    for l, router in enumerate(seen):
        np.testing.assert_array_equal(topk[:, l, :], router.numpy()[keep])
    counts = cap.counts()
    assert counts.shape == (3, cap.num_layers, spec.E)
    # each layer's counts sum to (routed tokens) x K; padding contributes nothing
    np.testing.assert_array_equal(counts.sum(axis=2), np.outer([24, 19, 24], np.ones(cap.num_layers)) * spec.K)
    np.testing.assert_array_equal(offsets, [0, 24, 43, 67])
    # counts equal a bincount of the traces, sequence by sequence
    for s in range(3):
        for l in range(cap.num_layers):
            ref = np.bincount(topk[offsets[s] : offsets[s + 1], l, :].ravel(), minlength=spec.E)
            np.testing.assert_array_equal(counts[s, l], ref)


def test_family_shapes_match_real_models(family_model):
    family, model = family_model
    spec = FAMILIES[family]
    cap = RoutingCapture(model)
    assert (cap.num_experts, cap.top_k) == (spec.E, spec.K)
    if family == "deepseek_v2":
        assert cap.layer_ids[0] == 1  # first layer dense, as DeepSeek-V2-Lite
    if family == "deepseek_moe":
        assert cap.layer_ids[0] == 1  # first layer dense, as DeepSeek-MoE-16B
        attn = model.model.layers[0].self_attn
        assert model.config.num_key_value_heads == model.config.num_attention_heads  # MHA
        assert attn is not None


def test_nemotron_bias_changes_selection():
    """The sigmoid router's score-correction bias picks experts that top-k of raw scores would not:
    recomputing top-k from router logits would be wrong, the capture is not."""
    model = build_tiny("nemotron_h", VOCAB, seed=3)
    logits = []
    handles = [
        m.register_forward_hook(lambda m, a, out: logits.append((out[0], out[2])))
        for n, m in model.named_modules()
        if n.endswith(".gate")
    ]
    with torch.no_grad(), capture(model, traces=True) as cap:
        model(input_ids=torch.randint(0, VOCAB, (2, 32)))
    for h in handles:
        h.remove()
    topk, _ = cap.traces()
    naive = torch.topk(logits[0][0].sigmoid(), k=6, dim=-1).indices.sort(-1).values.numpy()
    captured = np.sort(topk[:, 0, :].astype(np.int64), -1)
    assert (naive != captured).any()
    np.testing.assert_array_equal(captured, np.sort(logits[0][1].numpy(), -1))


def test_generate_mode_accumulates_rows():
    model = build_tiny("qwen3_moe", VOCAB, seed=0)
    with torch.no_grad(), capture(model, mode="generate") as cap:
        out = model(input_ids=torch.randint(0, VOCAB, (2, 8)), use_cache=True)
        model(input_ids=torch.randint(0, VOCAB, (2, 1)), past_key_values=out.past_key_values, use_cache=True)
    counts = cap.counts()
    assert counts.shape[0] == 2
    np.testing.assert_array_equal(counts.sum(axis=2), np.full((2, cap.num_layers), 9 * 8))


def test_hooks_removed_on_error():
    model = build_tiny("qwen3_moe", VOCAB, seed=0)
    before = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
    with pytest.raises(RuntimeError):
        with capture(model):
            raise RuntimeError("user code failed")
    after = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())
    assert before == after


def test_model_without_moe_layers_is_refused():
    from transformers import LlamaConfig, LlamaForCausalLM

    dense = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    with pytest.raises(DodocoError, match="no MoE layer.*qwen3_moe"):
        RoutingCapture(dense)
