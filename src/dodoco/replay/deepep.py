"""DeepEP as a replay dispatcher, where the ``deep_ep`` package is importable (guarded import).

DeepEP sends one copy of a token per destination rank (deduplicated), from top-k indices, not from
split sizes. Without token traces the top-k rows are synthesised from each rank's per-expert counts
(``synth_topk``: same counts, K distinct experts per token). On the machines this project was
developed and measured on, ``deep_ep`` is NOT installed, so this path has never run here: it is kept
small, follows DeepEP's documented intranode API (Buffer.get_dispatch_layout / dispatch / combine),
and reports itself unavailable otherwise.
"""

from __future__ import annotations

import importlib.util

from dodoco.errors import DodocoError

__all__ = ["deepep_available", "require_deepep"]


def deepep_available() -> bool:
    """True when the ``deep_ep`` package can be found (importlib.util.find_spec)."""
    try:
        return importlib.util.find_spec("deep_ep") is not None
    except (ImportError, ValueError):
        return False


def require_deepep() -> None:
    if not deepep_available():
        raise DodocoError("--dispatcher deepep needs the deep_ep package (DeepEP), which is not importable "
                          "here: install DeepEP, or use --dispatcher alltoall")


def _buffer(group, hidden_bytes: int):
    from deep_ep import Buffer  # guarded: only reached when deepep_available()

    n = group.size()
    nvl = max(Buffer.get_dispatch_config(n).get_nvl_buffer_size_hint(hidden_bytes, n),
              Buffer.get_combine_config(n).get_nvl_buffer_size_hint(hidden_bytes, n))
    return Buffer(group, nvl, 0)


def deepep_case(case, cfg, rank: int, device, l2: int) -> dict:
    """Time one case's dispatch and combine through DeepEP (intranode normal mode) -> result row.

    Experts sit contiguously (rank r holds experts [r*E/N, (r+1)*E/N)), as DeepEP assumes; the bytes
    reported are the per-expert-copy bytes of the case (DeepEP itself sends fewer: one copy per
    destination rank). Controls without per-expert counts (balanced, skew) cannot drive DeepEP and
    raise DodocoError.
    """
    import numpy as np
    import torch
    import torch.distributed as dist

    from dodoco.replay import harness as hz
    from dodoco.replay.plan import case_bytes, synth_topk
    from dodoco.replay.runner import bandwidth, stats

    if case.src is None or case.tokens is None:
        raise DodocoError(f"case {case.condition} has no per-expert counts: DeepEP replays real and mock "
                          "cases only")
    N, E = case.src.shape
    if E % N:
        raise DodocoError(f"DeepEP needs E={E} divisible by N={N} ranks")
    T = int(case.tokens[rank])
    K = int(round(case.src[rank].sum() / max(T, 1)))
    topk = torch.as_tensor(synth_topk(case.src[rank], T, K), device=device)
    weights = torch.full(topk.shape, 1.0 / K, dtype=torch.float32, device=device)
    x = torch.randn(T, cfg.hidden, dtype=hz.torch_dtype(cfg.dtype), device=device)
    buf = _buffer(dist.group.WORLD, cfg.row_bytes)
    layout = buf.get_dispatch_layout(topk, E)

    def step(k, mark):
        recv_x, _, _, _, handle, _ = buf.dispatch(
            x, topk_idx=topk, topk_weights=weights, num_tokens_per_rank=layout[0],
            num_tokens_per_rdma_rank=layout[1], is_token_in_rank=layout[3], num_tokens_per_expert=layout[2])
        mark(1)
        buf.combine(recv_x, handle)
        mark(2)

    t = hz.time_collective(step, 1, cfg.warmup, cfg.iters, 2, device)
    b = case_bytes(case.splits, cfg.row_bytes)
    d, c = stats(t[:, 0]), stats(t[:, 1])
    return {"condition": case.condition, "kind": case.kind, "step": case.step, "layer": case.layer, **b,
            "buffer_sets": 1, "check": "off (DeepEP)", "dispatch": d, "combine": c,
            **bandwidth(b["per_rank"], d["median_ms"], N), "splits": np.asarray(case.splits).tolist()}
