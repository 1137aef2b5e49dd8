"""Load balancing during zoo training: router taps, the auxiliary loss, aux-loss-free bias updates.

transformers 5.x routers (``*TopkRouter`` / ``*TopKRouter``) return ``(router_logits[T,E],
top_k_weights[T,K], top_k_index[T,K])``; a forward hook keeps the logits (with their gradient) and
the chosen experts of every MoE layer for the step. Formulas: ``dodoco.models.zoo.Balance``.
"""

from __future__ import annotations

import torch


def find_routers(model) -> list[torch.nn.Module]:
    """The router module of every MoE layer, in forward order."""
    routers = [m for m in model.modules() if type(m).__name__.lower().endswith("topkrouter")]
    assert routers, f"{type(model).__name__} has no top-k router module"
    return routers


class RouterTap:
    """Collects ``(logits[T,E], index[T,K])`` of each router call in training mode until ``take()``."""

    def __init__(self, model):
        self.routers = find_routers(model)
        self.E = int(self.routers[0].num_experts)
        self.K = int(self.routers[0].top_k)
        self._calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._handles = [r.register_forward_hook(self._hook) for r in self.routers]

    def _hook(self, module, args, output):
        if module.training:  # evaluation passes neither balance nor count
            self._calls.append((output[0], output[2]))

    def take(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        calls, self._calls = self._calls, []
        return calls

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def expert_load(index: torch.Tensor, E: int) -> torch.Tensor:
    """Assignments per expert: index[T,K] -> float32 [E]."""
    return torch.bincount(index.reshape(-1), minlength=E).float()


def aux_loss(logits: torch.Tensor, index: torch.Tensor, groups: int, E: int, K: int) -> torch.Tensor:
    """Mean over ``groups`` equal slices of T of ``sum_e f_e P_e`` (1.0 when perfectly balanced).

    logits[T,E], index[T,K]; ``f_e = E/(K T_g) * count_e`` (no gradient), ``P_e`` = mean softmax prob.
    """
    T = logits.shape[0]
    probs = torch.softmax(logits.float(), dim=-1).view(groups, T // groups, E)
    counts = torch.zeros(groups, E, device=logits.device)
    counts.scatter_add_(1, index.reshape(groups, -1), torch.ones(groups, (T // groups) * K, device=logits.device))
    f = counts * (E / (K * (T // groups)))
    return (f * probs.mean(dim=1)).sum(dim=-1).mean()


@torch.no_grad()
def update_bias(router, index: torch.Tensor, rate: float) -> None:
    """Aux-loss-free balancing: ``b_e += rate * sign(mean_load - load_e)`` on the router's correction bias."""
    load = expert_load(index, router.e_score_correction_bias.numel())
    router.e_score_correction_bias.add_(rate * torch.sign(load.mean() - load))


def balance_loss(calls, balance, batch_size: int, E: int, K: int) -> torch.Tensor | None:
    """The family's auxiliary loss summed over MoE layers (None for aux-loss-free families)."""
    if balance.method != "aux":
        return None
    groups = batch_size if balance.scope == "sequence" else 1
    return balance.alpha * sum(aux_loss(logits, index, groups, E, K) for logits, index in calls)
