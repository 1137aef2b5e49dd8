"""Megatron-Core's own expert kernel where it runs without Transformer Engine: its fused MoE.

Megatron-Core 0.19's training grouped MLP is ``TEGroupedMLP``, which needs Transformer Engine, and
Transformer Engine does not install on the machines DODOCO is measured on. Megatron-Core 0.19 also
ships an inference MoE that needs only torch and Triton, ``megatron.core.inference.moe.mcore_fused_moe``:
Triton permute of the rank's tokens by local expert (each expert's rows aligned to 16), FC1 through
``torch.nn.functional.grouped_mm``, squared ReLU (Triton), FC2 through grouped_mm, Triton unpermute
weighted by the routing probabilities (fp32). It serves only ungated squared-ReLU experts
(``ActivationType.SQUARED_RELU``): Nemotron-H's. So ``megatron`` measures ReLU^2 shapes
(``ExpertShape.act == "relu2"``) and says in one line why not otherwise. Its time includes the
permute and unpermute that ``grouped_mm`` and ``loop`` leave out (their tokens arrive sorted).

Shape legend: T tokens of the rank, G experts of the rank, H hidden size, I expert width.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["FUSED", "fused_moe", "fused_status", "fused_routing"]

FUSED = "megatron.core.inference.moe.mcore_fused_moe (permute, grouped_mm, squared ReLU, grouped_mm, unpermute)"


def fused_status(shape=None, device="cuda") -> str | None:
    """None when Megatron-Core's fused MoE can time ``shape`` on ``device``, else one line saying why not."""
    if shape is not None and shape.act != "relu2":
        return (
            f"megatron: not measured for {shape.label()}: Megatron-Core's fused MoE serves only ReLU^2 "
            "experts, and its SwiGLU grouped MLP (TEGroupedMLP) needs Transformer Engine"
        )
    if torch.device(device).type != "cuda":
        return "megatron: not measured: Megatron-Core's fused MoE runs Triton kernels on a CUDA GPU"
    try:
        from megatron.core.inference.moe import ActivationType, mcore_fused_moe  # noqa: F401
        import triton  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means: not here
        return f"megatron: not measured: Megatron-Core's fused MoE does not import ({type(exc).__name__}: {exc})"
    return None


def fused_routing(loads, device, seed: int = 0):
    """A rank's tokens in arrival order for the fused MoE: (routing_map int64 [T, 1] local expert of
    each token, a seeded shuffle of loads[g] copies of g; probs fp32 [T, 1] ones; valid_tokens int32
    scalar on the device)."""
    t = np.asarray(loads, dtype=np.int64)
    experts = np.random.default_rng(seed).permutation(np.repeat(np.arange(t.shape[0]), t))
    rmap = torch.as_tensor(experts, dtype=torch.int64, device=device).view(-1, 1)
    probs = torch.ones(rmap.shape, dtype=torch.float32, device=device)
    return rmap, probs, torch.tensor(int(t.sum()), dtype=torch.int32, device=device)


def fused_moe(x, w1, w2, route):
    """Megatron-Core's fused MoE of G ReLU^2 experts: x bf16 [T, H] in arrival order, w1 [G, I, H],
    w2 [G, H, I], route from ``fused_routing`` -> fp32 [T, H]."""
    from megatron.core.inference.moe import ActivationType, mcore_fused_moe

    rmap, probs, valid = route
    return mcore_fused_moe(x, probs, w1, w2, ActivationType.SQUARED_RELU, w1.shape[0], 0, valid, rmap)
