"""Built-in tiny configs, one per sequence mixer of the paper, with seeded random weights.

Each keeps its real checkpoint's routed experts E, top-k K, shared experts, routing function and
dense/MoE layer pattern; width and depth are small so that the five run on a laptop CPU. The routers
are untrained: numbers from these models show the pipeline works, they are not findings (the
trained zoo, ``zoo:<family>``, is for that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FamilySpec:
    """What a family is, and the transformers config of its tiny stand-in."""

    family: str
    mixer: str  # sequence mixer, as the paper names it
    real_model: str  # the checkpoint whose routing shape this keeps
    model_type: str  # transformers model_type
    routing: str  # routing function, in words
    E: int
    K: int
    shared_experts: int
    tokenizer: str  # bundled tokenizer used by the tiny model
    config: dict[str, Any] = field(default_factory=dict)

    def info(self, source: str, family: str, weights: str, revision, **more) -> dict:
        """What a run's manifest records of a model of this family (``tiny:`` and ``zoo:`` alike)."""
        return dict(
            source=source,
            family=family,
            mixer=self.mixer,
            stands_for=self.real_model,
            routing=self.routing,
            shared_experts=self.shared_experts,
            weights=weights,
            revision=revision,
            **more,
        )


_WIDTH = dict(hidden_size=64, intermediate_size=128, max_position_embeddings=4096, tie_word_embeddings=True)

# fmt: off
FAMILIES: dict[str, FamilySpec] = {
    "deepseek_v2": FamilySpec(
        family="deepseek_v2", mixer="MLA", real_model="deepseek-ai/DeepSeek-V2-Lite",
        model_type="deepseek_v2", routing="softmax, greedy top-k, no renormalisation",
        E=64, K=6, shared_experts=2, tokenizer="deepseek_v2",
        config=dict(
            **_WIDTH, num_hidden_layers=4, first_k_dense_replace=1, num_attention_heads=4,
            num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=32, qk_nope_head_dim=16,
            qk_rope_head_dim=8, v_head_dim=16, head_dim=8, n_routed_experts=64, num_experts_per_tok=6,
            n_shared_experts=2, moe_intermediate_size=32, topk_method="greedy", norm_topk_prob=False,
            routed_scaling_factor=1.0, n_group=1, topk_group=1,
        ),
    ),
    "deepseek_moe": FamilySpec(
        family="deepseek_moe", mixer="MHA", real_model="deepseek-ai/deepseek-moe-16b-base",
        model_type="qwen2_moe", routing="softmax, greedy top-k, no renormalisation",
        E=64, K=6, shared_experts=2, tokenizer="deepseek_v2",
        config=dict(
            **_WIDTH, num_hidden_layers=4, mlp_only_layers=[0], num_attention_heads=4,
            num_key_value_heads=4, num_experts=64, num_experts_per_tok=6, moe_intermediate_size=32,
            shared_expert_intermediate_size=64, norm_topk_prob=False, decoder_sparse_step=1,
        ),
    ),
    "qwen3_moe": FamilySpec(
        family="qwen3_moe", mixer="GQA", real_model="Qwen/Qwen3-30B-A3B",
        model_type="qwen3_moe", routing="softmax, top-k, renormalised",
        E=128, K=8, shared_experts=0, tokenizer="qwen3",
        config=dict(
            **_WIDTH, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            num_experts=128, num_experts_per_tok=8, moe_intermediate_size=32, norm_topk_prob=True,
            decoder_sparse_step=1, mlp_only_layers=[],
        ),
    ),
    "nemotron_h": FamilySpec(
        family="nemotron_h", mixer="Mamba-2", real_model="nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
        model_type="nemotron_h", routing="sigmoid + score-correction bias, top-k, renormalised, scaled",
        E=128, K=6, shared_experts=1, tokenizer="qwen3",
        config=dict(
            hidden_size=64, max_position_embeddings=4096, tie_word_embeddings=True,
            # Nemotron-3-Nano interleaves Mamba-2 (M), MoE (E) and attention (*) blocks.
            layers_block_type=["mamba", "moe", "mamba", "attention", "moe", "mamba", "moe"],
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
            mamba_num_heads=4, mamba_head_dim=16, ssm_state_size=16, n_groups=1, chunk_size=64,
            n_routed_experts=128, num_experts_per_tok=6, n_shared_experts=1, moe_intermediate_size=32,
            moe_shared_expert_intermediate_size=64, n_group=1, topk_group=1, norm_topk_prob=True,
            routed_scaling_factor=2.5, mlp_hidden_act="relu2",
        ),
    ),
    "qwen3_5_moe": FamilySpec(
        family="qwen3_5_moe", mixer="GDN", real_model="Qwen/Qwen3.5-35B-A3B",
        model_type="qwen3_5_moe_text", routing="softmax, top-k, renormalised",
        E=256, K=8, shared_experts=1, tokenizer="qwen3",
        config=dict(
            **_WIDTH, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            # three Gated DeltaNet layers per full-attention layer, as in Qwen3.5
            layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
            linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16,
            linear_value_head_dim=16, num_experts=256, num_experts_per_tok=8, moe_intermediate_size=16,
            shared_expert_intermediate_size=32,
        ),
    ),
}
# fmt: on


def tiny_config(family: str, vocab_size: int):
    """The transformers config of ``tiny:<family>`` for a tokenizer of ``vocab_size`` tokens."""
    from transformers import AutoConfig

    spec = FAMILIES[family]
    kwargs = dict(spec.config, vocab_size=vocab_size, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    if family == "nemotron_h":
        kwargs["layers_block_type"] = [_NEMOTRON_NAMES[t] for t in kwargs["layers_block_type"]]
    return AutoConfig.for_model(spec.model_type, **kwargs)


# transformers >= 5 names Nemotron-H blocks by mixer kind
_NEMOTRON_NAMES = {"mamba": "linear_attention", "moe": "moe", "attention": "full_attention", "mlp": "mlp"}


def build_tiny(family: str, vocab_size: int, seed: int = 0):
    """Instantiate ``tiny:<family>`` with seeded random weights (float32, CPU, eval mode).

    Nemotron-H's score-correction bias is set to seeded nonzero values, so that the biased selection
    path (chosen experts differ from the top-k of the unbiased scores) is really exercised.
    """
    import torch
    from transformers import AutoModelForCausalLM

    config = tiny_config(family, vocab_size)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if family == "nemotron_h":
        g = torch.Generator().manual_seed(seed + 1)
        for module in model.modules():
            bias = getattr(module, "e_score_correction_bias", None)
            if isinstance(bias, torch.Tensor):
                bias.copy_(0.005 * torch.randn(bias.shape, generator=g))
    return model.eval()
