"""Save vLLM's EPLB expert load from every worker, for ``dodoco import vllm`` (docs/ingest.md).

vLLM keeps the per-step expert load of the last ``window_size`` steps in GPU memory only. Load this
class into the workers with ``worker_extension_cls`` and call its method on every worker:

    llm = LLM(model, enable_expert_parallel=True, enable_eplb=True,
              worker_extension_cls="dodoco.ingest.vllm_dump.DodocoEplbDump")
    llm.generate(prompts)
    llm.collective_rpc("dodoco_dump_expert_load", args=("eplb_dumps", "run1"))

(online: ``VLLM_SERVER_DEV_MODE=1 vllm serve ... --worker-extension-cls ...`` then
``curl -X POST localhost:8000/collective_rpc -H 'Content-Type: application/json'
-d '{"method": "dodoco_dump_expert_load", "args": ["/data/eplb_dumps", "run1"]}'``).

Each rank writes ``vllm_eplb_load_<tag>_model<i>_rank<r>.pt`` (model 0 is the main model, 1 a
speculative drafter if it is an MoE). Nothing here imports vLLM until the method runs.
"""

from __future__ import annotations

import os
from pathlib import Path


def _ep_rank(worker) -> int:
    try:
        from vllm.distributed.parallel_state import get_ep_group

        return int(get_ep_group().rank_in_group)
    except Exception:  # older/newer vLLM without an EP group accessor: fall back to the worker rank
        return int(getattr(worker, "rank", 0))


def dump_expert_load(worker, out_dir: str, tag: str = "dump") -> list[str]:
    """Save every EPLB model state of this worker; returns the written paths."""
    import torch

    state = getattr(getattr(worker, "model_runner", None), "eplb_state", None)
    if state is None:
        raise RuntimeError("EPLB is not enabled: start vLLM with --enable-expert-parallel --enable-eplb")
    try:
        import vllm

        version = str(vllm.__version__)
    except Exception:
        version = ""
    model_states = getattr(state, "model_states", None)
    items = list(model_states.values()) if model_states else [state]  # older vLLM: one model on the state
    step = int(getattr(state, "expert_load_window_step", 0))
    rank = _ep_rank(worker)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ms in enumerate(items):
        data = {
            "expert_load_window": ms.expert_load_window.detach().cpu().clone(),
            "expert_load_window_step": step,
            "physical_to_logical_map": ms.physical_to_logical_map.detach().cpu().clone(),
            "rank": rank,
            "model_name": str(getattr(ms, "model_name", "")),
            "vllm_version": version,
            "dump_tag": str(tag),
        }
        path = out / f"vllm_eplb_load_{tag}_model{i}_rank{rank}.pt"
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(data, tmp)
        os.replace(tmp, path)
        paths.append(str(path))
    return paths


class DodocoEplbDump:
    """vLLM worker extension: ``collective_rpc("dodoco_dump_expert_load", args=(out_dir, tag))``."""

    def dodoco_dump_expert_load(self, out_dir: str, tag: str = "dump") -> list[str]:
        return dump_expert_load(self, out_dir, tag)
