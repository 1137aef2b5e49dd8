"""``deepep``: DeepEP's intranode dispatch and combine, when the ``deep_ep`` package imports.

DeepEP sends one copy of a token per destination rank (deduplicated (token, rank) pairs), from
top-k indices, through its own NVLink buffers (``Buffer.get_dispatch_layout``, ``dispatch``,
``combine``, following DeepEP's documented intranode API). On the machines DODOCO was developed
and measured on ``deep_ep`` does not import, so this path has never run there: the replay lists it
as not measured with the import error, and ``dodoco recommend`` never ranks it from rules alone.
"""

from __future__ import annotations

import torch

from dodoco.replay.dispatchers.base import Dispatcher, RankData, equal_slots

__all__ = ["DeepEP"]


class DeepEP(Dispatcher):
    name = "deepep"
    summary = "DeepEP intranode dispatch/combine: one copy per destination rank (untested here)"
    bytes = "dedup"
    order = "rank-token"
    stages = ("get_dispatch_layout", "dispatch", "combine")
    n_dispatch = 2
    needs_cuda = True

    @classmethod
    def probe(cls, backend: str, N: int) -> str | None:
        from dodoco.replay.dispatchers import missing

        return missing(cls.name) or super().probe(backend, N)

    @classmethod
    def limits(cls, case) -> None:
        equal_slots(case, "deepep (DeepEP)")

    def _buffer(self, hidden_bytes: int):
        from deep_ep import Buffer

        if getattr(self, "_buf", None) is None:
            n = self.ctx.N
            nvl = max(
                Buffer.get_dispatch_config(n).get_nvl_buffer_size_hint(hidden_bytes, n),
                Buffer.get_combine_config(n).get_nvl_buffer_size_hint(hidden_bytes, n),
            )
            self._buf = Buffer(self.ctx.group, nvl, 0)
        return self._buf

    def prepare(self, data: RankData, sets: int):
        buf = self._buffer(data.H * data.x.element_size())
        weights = torch.full(data.topk.shape, 1.0 / max(data.K, 1), dtype=torch.float32, device=data.device)
        xs = [data.x if k == 0 else data.x.clone() for k in range(sets)]
        return {"buf": buf, "topk": data.topk, "w": weights, "xs": xs, "E": data.E, "last": 0}

    def step(self, state, k: int, mark) -> None:
        buf, topk = state["buf"], state["topk"]
        per_rank, per_rdma, per_expert, in_rank, _ = buf.get_dispatch_layout(topk, state["E"])
        mark(1)
        recv_x, _, _, _, handle, _ = buf.dispatch(
            state["xs"][k],
            topk_idx=topk,
            topk_weights=state["w"],
            num_tokens_per_rank=per_rank,
            num_tokens_per_rdma_rank=per_rdma,
            is_token_in_rank=in_rank,
            num_tokens_per_expert=per_expert,
        )
        mark(2)
        state["recv"], state["in_rank"] = recv_x, in_rank
        state["out"] = buf.combine(recv_x, handle)[0]
        mark(3)
        state["last"] = k

    def received(self, state) -> torch.Tensor:
        return state["recv"]

    def combined(self, state, data: RankData) -> str:
        x = state["xs"][state["last"]]
        m = state["in_rank"].sum(dim=1, dtype=torch.float32)[:, None]  # destination ranks per token
        if not torch.equal(state["out"], (x.float() * m).to(x.dtype)):
            return "combine: output is not (destination ranks of the token) x input"
        return "ok"
