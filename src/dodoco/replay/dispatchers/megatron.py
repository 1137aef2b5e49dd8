"""``megatron`` / ``megatron-allgather``: Megatron-Core's own token dispatchers, called as its MoE layer calls them.

``MoEAlltoAllTokenDispatcher`` (and ``MoEAllGatherTokenDispatcher``) from ``megatron-core``
(``pip install 'dodoco[megatron]'``), driven by a routing map and probabilities built from the
case's top-k, experts = the identity. One iteration is the six calls of ``MoELayer.forward``:
dispatch_preprocess (count all-gather, permute), token_dispatch (host sync, all-to-all of rows and
probs), dispatch_postprocess (sort by local expert), combine_preprocess, token_combine,
combine_postprocess (unpermute, which sums a token's K copies). For the alltoall dispatcher two more
marks split them into the stages metadata exchange, permute, host sync, all-to-all, sort by local
expert | unsort, all-to-all back, unpermute (``_instrument``: a mark after Megatron's own
``preprocess`` and after its host sync; Megatron's code runs unchanged). Unfused permutation (no Transformer
Engine), no token dropping, no TP, EP = N over the whole world. The model-parallel state is set up
once per process (``parallel_state.initialize_model_parallel(expert_model_parallel_size=N)``).

Megatron-Core needs CUDA: the alltoall dispatcher's constructor makes a ``torch.cuda.Stream`` and its
all-to-all allocates on ``torch.cuda.current_device()``, so the gloo dry run skips it.
"""

from __future__ import annotations

import torch

from dodoco.errors import DodocoError
from dodoco.replay.dispatchers.base import Dispatcher, RankData, equal_slots

__all__ = ["MegatronAllGather", "MegatronAllToAll", "parallel_state"]

_CALLS = (
    "dispatch_preprocess",
    "token_dispatch",
    "dispatch_postprocess",
    "combine_preprocess",
    "token_combine",
    "combine_postprocess",
)
#: The alltoall dispatcher's stages: its six calls, with two marks inside them (after its metadata pass,
#: after the host sync token_dispatch waits on) -> the first five are the dispatch, the last three the combine.
_STAGES = (
    "metadata exchange",
    "permute",
    "host sync",
    "all-to-all",
    "sort by local expert",
    "unsort",
    "all-to-all back",
    "unpermute",
)
_INNER = {"metadata": 1, "sync": 3}


def _instrument(disp) -> None:
    """Mark inside Megatron's own dispatch: after ``preprocess`` (the count all-gather and split sizes,
    called by dispatch_preprocess) and after the host sync at ``before_ep_alltoall`` (called by
    token_dispatch). Megatron's methods run unchanged; the wrappers only record a mark after them."""
    pre, dtoh = disp.preprocess, disp._maybe_dtoh_and_synchronize

    def preprocess(routing_map):
        out = pre(routing_map)
        disp._dodoco_mark("metadata")
        return out

    def maybe_dtoh_and_synchronize(point, tokens_per_expert=None):
        out = dtoh(point, tokens_per_expert)
        if point == "before_ep_alltoall":
            disp._dodoco_mark("sync")
        return out

    disp.preprocess, disp._maybe_dtoh_and_synchronize = preprocess, maybe_dtoh_and_synchronize
    disp._dodoco_mark = lambda what: None


def parallel_state(N: int) -> None:
    """Megatron's model-parallel state, once per process: EP = N over the whole world, TP = 1."""
    from megatron.core import parallel_state as ps

    if not ps.model_parallel_is_initialized():
        ps.initialize_model_parallel(expert_model_parallel_size=N, create_gloo_process_groups=False)


def moe_config(N: int, H: int, E: int, K: int, **extra):
    """Megatron-Core's TransformerConfig of one bf16 MoE layer (hidden H, E experts, top-K, the
    all-to-all dispatcher, EP = N, no biases); ``extra`` adds or overrides fields."""
    from megatron.core.transformer.transformer_config import TransformerConfig

    base = dict(num_layers=1, hidden_size=H, num_attention_heads=max(1, H // 128), num_moe_experts=E)
    base.update(moe_router_topk=K, moe_token_dispatcher_type="alltoall", expert_model_parallel_size=N)
    base.update(bf16=True, params_dtype=torch.bfloat16, add_bias_linear=False)
    return TransformerConfig(**{**base, **extra})


class MegatronAllToAll(Dispatcher):
    name = "megatron"
    summary = "Megatron-Core MoEAlltoAllTokenDispatcher (permute, count exchange + host sync, all-to-all)"
    order = "expert-major"
    stages = _STAGES
    n_dispatch = 5
    needs_cuda = True
    _class = "MoEAlltoAllTokenDispatcher"
    _made: dict = {}

    @classmethod
    def probe(cls, backend: str, N: int) -> str | None:
        from dodoco.replay.dispatchers import missing

        why = missing(cls.name)
        if why:
            return why
        if backend != "nccl" or not torch.cuda.is_available():
            return (
                f"Megatron-Core's {cls._class} needs CUDA (its constructor makes a torch.cuda.Stream, its "
                "all-to-all allocates on torch.cuda.current_device()): not run on the gloo CPU dry run"
            )
        return None

    @classmethod
    def limits(cls, case) -> None:
        equal_slots(case, f"{cls.name} ({cls._class})")

    @classmethod
    def need_bytes(cls, case, rank: int, sets: int, row_bytes: int) -> int:
        rows = max(int(case.splits[rank].sum()), int(case.splits[:, rank].sum()))
        return int(sets * case.tokens[rank] * row_bytes + 6 * rows * row_bytes)

    def _dispatcher(self, E: int, K: int, H: int):
        """One Megatron dispatcher per (E, K, H), made once per process."""
        key = (self._class, E, K, H)
        if key not in self._made:
            from megatron.core.transformer.moe import token_dispatcher as td
            from megatron.core.transformer.moe.moe_utils import get_default_pg_collection

            N, rank = self.ctx.N, self.ctx.rank
            parallel_state(N)
            cfg = moe_config(N, H, E, K, moe_permute_fusion=False, moe_ffn_hidden_size=H)
            ne = E // N
            self._made[key] = getattr(td, self._class)(
                ne, list(range(rank * ne, (rank + 1) * ne)), config=cfg, pg_collection=get_default_pg_collection()
            )
            if self.stages == _STAGES:
                _instrument(self._made[key])
        return self._made[key]

    def prepare(self, data: RankData, sets: int):
        ne = equal_slots(data.case, self.name)
        disp = self._dispatcher(ne * data.N, data.K, data.H)
        rmap = torch.zeros(data.T, data.E, dtype=torch.bool, device=data.device)
        rmap.scatter_(1, data.topk, True)
        probs = rmap.to(torch.float32) / max(data.K, 1)
        xs = [data.x if k == 0 else data.x.clone() for k in range(sets)]
        return {"disp": disp, "map": rmap, "probs": probs, "xs": xs, "last": 0}

    def step(self, state, k: int, mark) -> None:
        state["disp"]._dodoco_mark = lambda what: mark(_INNER[what])
        self._run(state, k, mark, 2, 4)

    @classmethod
    def _run(cls, state, k: int, mark, after_pre: int, after_dispatch: int) -> None:
        """One dispatch + combine on buffer set k, marking after preprocess, token dispatch, then the rest."""
        d = state["disp"]
        h, p = d.dispatch_preprocess(state["xs"][k], state["map"], state["probs"])
        mark(after_pre)
        h, p = d.token_dispatch(h, p)
        mark(after_dispatch)
        cls._finish(state, d, h, p, mark, after_dispatch)
        state["last"] = k

    @staticmethod
    def _finish(state, d, h, p, mark, at: int) -> None:
        """dispatch_postprocess and the combine, marking stages at+1 .. at+4."""
        h, tpe, p = d.dispatch_postprocess(h, p)
        state["recv"], state["tpe"] = h, tpe  # before the mark: the whole-layer replay's experts read them there
        mark(at + 1)
        h = d.combine_preprocess(h)
        mark(at + 2)
        h = d.token_combine(h)
        mark(at + 3)
        state["out"] = d.combine_postprocess(h)
        mark(at + 4)

    def received(self, state) -> torch.Tensor:
        return state["recv"]

    def layer_rows(self, state, k: int) -> torch.Tensor:
        return state["recv"]

    def combined(self, state, data: RankData) -> str:
        lo = int(data.slots[: data.rank].sum())
        want = torch.zeros(int(data.slots.sum()), dtype=torch.int64)
        for t in data.case.topk:
            want += torch.bincount(torch.as_tensor(t, dtype=torch.int64).reshape(-1), minlength=want.shape[0])
        got = torch.as_tensor(state["tpe"]).to(torch.int64).cpu()
        if got.tolist() != want[lo : lo + got.shape[0]].tolist():
            return "tokens_per_expert differs from the routing's counts of this rank's experts"
        x = state["xs"][state["last"]]
        if not torch.equal(state["out"], (x.float() * data.K).to(x.dtype)):
            return "combine: output is not K x input (identity experts: the K copies of a token summed)"
        return "ok"


class MegatronAllGather(MegatronAllToAll):
    name = "megatron-allgather"
    summary = "Megatron-Core MoEAllGatherTokenDispatcher (every token to every rank, reduce-scatter back)"
    bytes = "allgather"
    stages = _CALLS
    n_dispatch = 3
    _class = "MoEAllGatherTokenDispatcher"

    @classmethod
    def limits(cls, case) -> None:
        super().limits(case)
        if len(set(int(t) for t in case.tokens)) > 1:
            raise DodocoError(
                f"{cls.name} ({cls._class}) all-gathers equal token blocks, but this case has "
                f"{[int(t) for t in case.tokens]} tokens on its ranks: replay it with the same "
                "tokens on every rank"
            )

    def step(self, state, k: int, mark) -> None:
        self._run(state, k, mark, 1, 2)

    @classmethod
    def need_bytes(cls, case, rank: int, sets: int, row_bytes: int) -> int:
        T = int(sum(case.tokens))
        return int(sets * case.tokens[rank] * row_bytes + 4 * T * row_bytes)
