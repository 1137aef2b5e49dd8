"""Routing adapters: find a model's MoE layers and the place where its chosen experts are visible.

Two adapters cover the field:

- ``experts-prehook``: transformers 5.x experts modules (decorated with ``use_experts_implementation``,
  marked by the attribute ``_is_expert_parallel``, or on 5.17 by its layout flags) are called as ``experts(hidden[T,H],
  top_k_index[T,K], top_k_weights[T,K])``. A forward pre-hook there sees exactly the experts the model
  computes with, whatever the routing function (softmax, sigmoid with score-correction bias,
  group-limited top-k). Top-k is never recomputed from router logits.
- ``gate-topk-output``: legacy remote-code DeepSeek-MoE (``DeepseekForCausalLM``) has a ``MoEGate``
  module returning ``(topk_idx[T,K], topk_weight[T,K], aux_loss)``; a forward hook reads its output.

Shared experts are not routed and are not counted; dense layers are not MoE layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from dodoco.errors import DodocoError
from dodoco.registry import Registry

ADAPTERS = Registry("adapter")
ADAPTERS.register(
    "experts-prehook",
    "dodoco.models.adapters:ExpertsPrehook",
    "transformers 5.x experts modules: pre-hook on (hidden, top_k_index, top_k_weights)",
)
ADAPTERS.register(
    "gate-topk-output",
    "dodoco.models.adapters:GateTopkOutput",
    "legacy remote-code MoEGate returning (topk_idx, topk_weight, aux_loss)",
)


@dataclass(frozen=True)
class MoELayer:
    """One MoE layer: the module to hook, the decoder layer index it belongs to, E and K."""

    name: str
    module: Any
    layer_id: int
    num_experts: int
    top_k: int


_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def _layer_id(name: str, fallback: int) -> int:
    match = _LAYER_RE.search(name)
    return int(match.group(1)) if match else fallback


def _config_top_k(model) -> int | None:
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    for key in ("num_experts_per_tok", "moe_topk", "top_k", "num_selected_experts"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _is_experts_module(module) -> bool:
    """True for classes decorated with ``use_experts_implementation``.

    transformers >= 5.20 marks them with ``_is_expert_parallel``; 5.17 sets only the layout flags
    (``has_gate``, ``is_concatenated``, ``is_transposed``) in the decorated ``__init__``.
    """
    marked = hasattr(module, "_is_expert_parallel") or all(
        hasattr(module, a) for a in ("has_gate", "is_concatenated", "is_transposed")
    )
    return marked and isinstance(getattr(module, "num_experts", None), int)


class ExpertsPrehook:
    """Adapter for transformers' experts modules: ``top_k_index`` is their second argument."""

    name = "experts-prehook"

    @staticmethod
    def find(model) -> list[MoELayer]:
        top_k = _config_top_k(model)
        layers = []
        for i, (name, module) in enumerate(model.named_modules()):
            if _is_experts_module(module):
                k = top_k or int(getattr(module, "top_k", 0))
                layers.append(MoELayer(name, module, _layer_id(name, i), int(module.num_experts), k))
        return layers

    @staticmethod
    def attach(layer: MoELayer, on_indices: Callable) -> Any:
        def hook(module, args, kwargs):
            index = args[1] if len(args) > 1 else kwargs["top_k_index"]
            on_indices(index)

        return layer.module.register_forward_pre_hook(hook, with_kwargs=True)


class GateTopkOutput:
    """Adapter for legacy DeepSeek-MoE remote code: the gate returns the chosen indices first."""

    name = "gate-topk-output"

    @staticmethod
    def find(model) -> list[MoELayer]:
        layers = []
        for i, (name, module) in enumerate(model.named_modules()):
            if type(module).__name__ == "MoEGate" and hasattr(module, "n_routed_experts"):
                k = int(getattr(module, "top_k", 0) or _config_top_k(model) or 0)
                layers.append(MoELayer(name, module, _layer_id(name, i), int(module.n_routed_experts), k))
        return layers

    @staticmethod
    def attach(layer: MoELayer, on_indices: Callable) -> Any:
        def hook(module, args, output):
            on_indices(output[0])

        return layer.module.register_forward_hook(hook)


def find_moe_layers(model) -> tuple[type, list[MoELayer]]:
    """Return the adapter that applies to ``model`` and its MoE layers, in forward order.

    Raises a ``DodocoError`` naming the supported families when the model has no MoE layer.
    """
    for name in ADAPTERS.names():
        adapter = ADAPTERS.get(name)
        layers = adapter.find(model)
        if layers:
            experts = {layer.num_experts for layer in layers}
            if len(experts) != 1 or any(layer.top_k <= 0 for layer in layers):
                raise DodocoError(
                    f"model {type(model).__name__} has MoE layers with differing expert counts {sorted(experts)} "
                    "or an unknown top-k: DODOCO needs one E and K per model"
                )
            return adapter, layers
    from dodoco.models.tiny import FAMILIES

    families = ", ".join(sorted({spec.model_type for spec in FAMILIES.values()} | {"deepseek_v3", "olmoe", "mixtral"}))
    raise DodocoError(
        f"model {type(model).__name__} has no MoE layer DODOCO can hook: use a transformers MoE family "
        f"({families}, ...) or DeepSeek-MoE remote code with --trust-remote-code"
    )
