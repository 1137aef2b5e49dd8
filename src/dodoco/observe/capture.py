"""Record routing on the device: per-sequence expert counts and, if asked, token traces.

Per forward, the root module's pre-hook reads the batch shape ``[B, T]`` and the attention mask; every
MoE layer's hook then scatter-adds its chosen experts ``top_k_index[B*T, K]`` into one preallocated
``[B, L, E]`` int32 buffer on the model's device (padding tokens add 0). Nothing is synchronised per
layer: the buffer is copied to the host once, when the forward returns.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from dodoco.errors import DodocoError
from dodoco.models.adapters import find_moe_layers


class RoutingCapture:
    """Hooks on one model that record what its routers chose, per sequence.

    ``mode="forward"``: each forward appends its B rows (one per sequence of that batch).
    ``mode="generate"``: rows accumulate across forwards while B stays the same, so that a prompt's
    prefill and its decode steps sum into one row per sequence.
    """

    def __init__(self, model, *, traces: bool = False, mode: str = "forward"):
        if mode not in ("forward", "generate"):
            raise DodocoError(f"capture mode '{mode}' is not known: use 'forward' or 'generate'")
        self.model = model
        self.adapter, self.layers = find_moe_layers(model)
        self.num_layers = len(self.layers)
        self.num_experts = self.layers[0].num_experts
        self.top_k = self.layers[0].top_k
        self.layer_ids = [layer.layer_id for layer in self.layers]
        self.traces_enabled = traces
        self.mode = mode
        self.trace_dtype = torch.uint8 if self.num_experts <= 256 else torch.int16
        self._handles: list = []
        self.reset()

    # -- results -------------------------------------------------------------------------------
    def reset(self) -> None:
        self._counts: list[np.ndarray] = []
        self._tokens: list[np.ndarray] = []
        self._traces: list[np.ndarray] = []
        self._live = None  # device buffers of the forward in flight

    def counts(self) -> np.ndarray:
        """Per-sequence counts ``[S, L, E]`` (uint32) of everything recorded since the last reset."""
        self._flush_generate()
        if not self._counts:
            return np.zeros((0, self.num_layers, self.num_experts), np.uint32)
        return np.concatenate(self._counts)

    def seq_tokens(self) -> np.ndarray:
        """Routed (non-padding) tokens per sequence ``[S]``."""
        self._flush_generate()
        return np.concatenate(self._tokens) if self._tokens else np.zeros(0, np.int64)

    def traces(self) -> tuple[np.ndarray, np.ndarray]:
        """Token traces ``topk[T, L, K]`` and sequence offsets ``[S+1]`` (mode "forward" only)."""
        if not self.traces_enabled:
            raise DodocoError("token traces were not recorded: capture with traces=True")
        topk = np.concatenate(self._traces) if self._traces else np.zeros((0, self.num_layers, self.top_k), np.uint8)
        offsets = np.concatenate([[0], np.cumsum(self.seq_tokens())]).astype(np.int64)
        return topk, offsets

    # -- hooks ---------------------------------------------------------------------------------
    def attach(self) -> "RoutingCapture":
        self._handles.append(self.model.register_forward_pre_hook(self._begin, with_kwargs=True))
        for l, layer in enumerate(self.layers):
            self._handles.append(self.adapter.attach(layer, self._layer_hook(l)))
        self._handles.append(self.model.register_forward_hook(self._end))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _begin(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs.get("inputs_embeds")
        if ids is None:
            raise DodocoError("capture needs input_ids or inputs_embeds passed to the model's forward")
        B, T = ids.shape[0], ids.shape[1]
        device = ids.device
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2 and mask.shape[1] >= T:
            valid = mask[:, -T:].to(torch.int32)
        else:
            valid = torch.ones(B, T, dtype=torch.int32, device=device)
        L, E = self.num_layers, self.num_experts
        live = self._live if self.mode == "generate" else None
        if live is None or live["B"] != B:
            self._flush_generate()
            live = {
                "B": B,
                "buf": torch.zeros(B * L * E, dtype=torch.int32, device=device),
                "tokens": torch.zeros(B, dtype=torch.int64, device=device),
            }
        seq = torch.arange(B, device=device).repeat_interleave(T)
        live.update(T=T, base=(seq * (L * E)).unsqueeze(1), weight=valid.reshape(-1, 1), valid=valid)
        live["tokens"] += valid.sum(1)
        if self.traces_enabled:
            live["trace"] = torch.zeros(B * T, L, self.top_k, dtype=self.trace_dtype, device=device)
        self._live = live

    def _layer_hook(self, l: int):
        E = self.num_experts

        def on_indices(index: torch.Tensor) -> None:
            live = self._live
            if live is None:
                return  # the MoE module was called outside a forward of the hooked model
            index = index.reshape(-1, index.shape[-1])
            if index.shape[0] != live["base"].shape[0]:
                raise DodocoError(
                    f"MoE layer saw {index.shape[0]} tokens for a batch of {live['B']}x{live['T']}: "
                    "packed or dropped-token inputs are not supported by capture; pass [B, T] input_ids"
                )
            flat = live["base"] + l * E + index.long()
            live["buf"].scatter_add_(0, flat.reshape(-1), live["weight"].expand_as(index).reshape(-1))
            if "trace" in live:
                live["trace"][:, l, :] = index.to(self.trace_dtype)

        return on_indices

    def _end(self, module, args, output):
        live = self._live
        if live is None or self.mode == "generate":
            return
        B, L, E = live["B"], self.num_layers, self.num_experts
        self._counts.append(live["buf"].view(B, L, E).cpu().numpy().astype(np.uint32))
        self._tokens.append(live["tokens"].cpu().numpy())
        if "trace" in live:
            keep = live["valid"].reshape(-1).bool()
            trace = live["trace"][keep].cpu().numpy()
            self._traces.append(trace.astype(np.uint8 if self.num_experts <= 256 else np.uint16))
        self._live = None

    def _flush_generate(self) -> None:
        live = self._live
        if self.mode != "generate" or live is None:
            return
        B, L, E = live["B"], self.num_layers, self.num_experts
        self._counts.append(live["buf"].view(B, L, E).cpu().numpy().astype(np.uint32))
        self._tokens.append(live["tokens"].cpu().numpy())
        self._live = None


@contextmanager
def capture(model, *, traces: bool = False, mode: str = "forward"):
    """Record the routing of every forward pass of ``model`` run inside the block.

    >>> with dodoco.capture(model) as cap:            # doctest: +SKIP
    ...     model(input_ids=batch, attention_mask=mask)
    >>> cap.counts().shape                            # doctest: +SKIP
    (S, L, E)

    Hooks are removed on exit, also when the block raises.
    """
    recorder = RoutingCapture(model, traces=traces, mode=mode).attach()
    try:
        yield recorder
    finally:
        recorder.detach()
