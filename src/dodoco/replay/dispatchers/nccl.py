"""``nccl``: torch.distributed ``all_to_all_single`` of rows already sorted by destination (the floor).

Split sizes are known on the host and the rows are permuted before the timed loop: no metadata
exchange, no host sync, no permutation; what is left is the collective itself, on NCCL (GPUs) or
gloo (the CPU dry run). Dispatch sends the rows, combine sends them back to their sources.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dodoco.replay.dispatchers.base import Dispatcher, RankData

__all__ = ["NcclAllToAll"]


class NcclAllToAll(Dispatcher):
    name = "nccl"
    summary = "torch.distributed all_to_all_single, splits known on the host, rows pre-sorted (the floor)"
    install = "torch"
    stages = ("all_to_all", "all_to_all back")  # rank-major delivery, one dispatch stage (the defaults)

    def prepare(self, data: RankData, sets: int):
        r = data.rank
        ins, outs = [int(v) for v in data.splits[r]], [int(v) for v in data.splits[:, r]]
        send = data.x.index_select(0, data.send_tok)
        bufs = []
        for k in range(sets):
            s = send if k == 0 else send.clone()
            bufs.append((s, s.new_empty((sum(outs), data.H)), torch.empty_like(s)))
        return {"ins": ins, "outs": outs, "bufs": bufs, "last": 0}

    def step(self, state, k: int, mark) -> None:
        send, recv, back = state["bufs"][k]
        dist.all_to_all_single(recv, send, state["outs"], state["ins"], group=self.ctx.group)
        mark(1)
        dist.all_to_all_single(back, recv, state["ins"], state["outs"], group=self.ctx.group)
        mark(2)
        state["last"] = k

    def received(self, state) -> torch.Tensor:
        return state["bufs"][state["last"]][1]

    def layer_rows(self, state, k: int) -> torch.Tensor:
        return state["bufs"][k][1]

    def combined(self, state, data: RankData) -> str:
        send, _, back = state["bufs"][state["last"]]
        if not torch.equal(back.view(torch.uint8), send.view(torch.uint8)):
            return "combine: the rows that came back differ from the rows sent"
        return "ok"
