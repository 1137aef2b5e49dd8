"""Megatron-Core's experts in the whole-layer replay (``dodoco replay --layer --kernel megatron``).

The reference a Megatron user trusts is Megatron-Core's own MoE layer: its token dispatcher, then its
experts on ``dispatch_postprocess``'s output (rows sorted by local expert, ``tokens_per_expert``,
permuted probabilities), then its combine (``MoELayer.routed_experts_compute``). Megatron-Core 0.19's
grouped MLP is ``TEGroupedMLP``, which needs Transformer Engine; Transformer Engine does not install
on the machines DODOCO is measured on (``compute.kernels.megatron_status`` says so in one line). What
runs without it is Megatron's local spec (``LocalSpecProvider.grouped_mlp_modules``): ``SequentialMLP``,
one ``MLP`` per local expert built from Megatron's ``ColumnParallelLinear`` (gate and up, 2I wide) and
``RowParallelLinear`` (down), SwiGLU (``gated_linear_unit``, SiLU), no bias, bf16, tensor parallel 1,
expert parallel N. It runs the experts one after another, as Megatron does when
``moe_grouped_gemm`` is off. Behind ``megatron`` (``MoEAlltoAllTokenDispatcher``) it is Megatron's
whole MoE layer but for the grouped GEMM; behind any other dispatcher it is Megatron's experts on
that dispatcher's delivery.

Needs CUDA (Megatron's parallel linear layers initialise their weights with its CUDA RNG tracker),
so the gloo dry run lists it as not measured. Shape legend: G local experts, H hidden size, I width.
"""

from __future__ import annotations

import torch

__all__ = ["grouped_mlp_line", "megatron_layer_probe", "sequential_forward", "sequential_mlp"]


def megatron_layer_probe(backend: str) -> str | None:
    """None when Megatron-Core's SequentialMLP can run here, else one line saying why not."""
    from dodoco.replay.dispatchers import missing

    why = missing("megatron")
    if why:
        return f"--kernel megatron: {why}"
    if backend != "nccl" or not torch.cuda.is_available():
        return (
            "--kernel megatron: Megatron-Core's SequentialMLP needs CUDA (its parallel linear layers initialise "
            "on the GPU with Megatron's CUDA RNG tracker): not run on the gloo CPU dry run"
        )
    return None


def grouped_mlp_line() -> str:
    """One line: why Megatron's grouped MLP (TEGroupedMLP) is not what runs, and what does instead."""
    from dodoco.compute.kernels import megatron_status

    return (
        megatron_status()[1] + "; the Megatron reference runs SequentialMLP (Megatron's local "
        "ColumnParallelLinear/RowParallelLinear per expert) instead"
    )


def sequential_mlp(shape, G: int, N: int):
    """Megatron-Core's SequentialMLP of G local SwiGLU experts (H, I of ``shape``) for EP = N, on this GPU."""
    import torch.nn.functional as F
    from megatron.core import tensor_parallel
    from megatron.core.transformer.mlp import MLPSubmodules
    from megatron.core.transformer.moe.experts import SequentialMLP
    from megatron.core.transformer.moe.moe_utils import get_default_pg_collection

    from dodoco.replay.dispatchers.megatron import moe_config, parallel_state

    parallel_state(N)
    tensor_parallel.model_parallel_cuda_manual_seed(1234)
    H, I = shape.hidden, shape.width
    swiglu = dict(gated_linear_unit=True, activation_func=F.silu, bias_activation_fusion=False)
    cfg = moe_config(N, H, G * N, 1, ffn_hidden_size=I, moe_ffn_hidden_size=I, moe_grouped_gemm=False, **swiglu)
    subs = MLPSubmodules(linear_fc1=tensor_parallel.ColumnParallelLinear, linear_fc2=tensor_parallel.RowParallelLinear)
    mlp = SequentialMLP(G, cfg, subs, pg_collection=get_default_pg_collection())
    return mlp.to(device=torch.cuda.current_device(), dtype=torch.bfloat16).eval()


def sequential_forward(mlp, x: torch.Tensor, plan) -> torch.Tensor:
    """The experts' output [rows, H]: SequentialMLP on rows grouped by local expert (plan.sizes, host),
    every row's probability 1 (the replay's routing carries no router weights)."""
    probs = getattr(mlp, "_dodoco_probs", None)
    if probs is None or probs.shape[0] < x.shape[0]:
        probs = mlp._dodoco_probs = torch.ones(max(x.shape[0], 1), dtype=torch.float32, device=x.device)
    with torch.no_grad():
        out, _ = mlp(x, plan.sizes, probs[: x.shape[0]])
    return out
