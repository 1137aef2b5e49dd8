"""The gate-topk-output adapter on a small stand-in of DeepSeek-MoE-16B's remote code.

The stand-in follows ``modeling_deepseek.py`` of deepseek-ai/deepseek-moe-16b-base: ``MoEGate`` takes
``[bsz, seq, h]``, scores with softmax, takes ``torch.topk(..., sorted=False)``, optionally
renormalises, and returns ``(topk_idx[T,K], topk_weight[T,K], aux_loss)``; ``DeepseekMoE`` runs the
routed experts on those indices and adds the (unrouted) shared experts.
"""

from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dodoco.observe.capture import capture


class MoEGate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.n_routed_experts = config.n_routed_experts
        self.norm_topk_prob = config.norm_topk_prob
        self.weight = nn.Parameter(torch.randn(self.n_routed_experts, config.hidden_size) * 0.5)

    def forward(self, hidden_states):
        bsz, seq_len, h = hidden_states.shape
        logits = F.linear(hidden_states.view(-1, h), self.weight)
        scores = logits.softmax(dim=-1)
        topk_weight, topk_idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        if self.top_k > 1 and self.norm_topk_prob:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        return topk_idx, topk_weight, None


class DeepseekMoE(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Linear(config.hidden_size, config.hidden_size, bias=False) for _ in range(config.n_routed_experts)
        )
        self.gate = MoEGate(config)
        self.shared_experts = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, hidden_states):
        identity, shape = hidden_states, hidden_states.shape
        topk_idx, topk_weight, _ = self.gate(hidden_states)
        flat = hidden_states.view(-1, shape[-1])
        y = torch.zeros_like(flat)
        for k in range(topk_idx.shape[1]):
            for e in topk_idx[:, k].unique():
                rows = topk_idx[:, k] == e
                y[rows] += topk_weight[rows, k, None] * self.experts[int(e)](flat[rows])
        return y.view(*shape) + self.shared_experts(identity)


class Layer(nn.Module):
    def __init__(self, config, moe: bool):
        super().__init__()
        self.mlp = DeepseekMoE(config) if moe else nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x):
        return x + self.mlp(x)


class DeepseekForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        # first layer dense, as DeepSeek-MoE-16B (first_k_dense_replace = 1)
        self.layers = nn.ModuleList(Layer(config, moe=i > 0) for i in range(3))

    def forward(self, input_ids, attention_mask=None):
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x)
        return x


def test_gate_adapter_captures_gate_output():
    torch.manual_seed(0)
    config = SimpleNamespace(
        vocab_size=100, hidden_size=16, n_routed_experts=64, num_experts_per_tok=6, norm_topk_prob=False
    )
    model = DeepseekForCausalLM(config)
    reference = []
    for module in model.modules():
        if isinstance(module, MoEGate):
            module.register_forward_hook(lambda m, a, out: reference.append(out[0].clone()))
    ids = torch.randint(0, 100, (2, 10))
    with torch.no_grad(), capture(model, traces=True) as cap:
        model(ids)
    assert cap.adapter.name == "gate-topk-output"
    assert cap.layer_ids == [1, 2] and cap.num_experts == 64 and cap.top_k == 6
    topk, _ = cap.traces()
    for l, ref in enumerate(reference):
        np.testing.assert_array_equal(topk[:, l, :], ref.numpy())
    np.testing.assert_array_equal(cap.counts().sum(axis=2), np.full((2, 2), 10 * 6))
