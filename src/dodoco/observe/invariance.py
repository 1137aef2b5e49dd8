"""Batch invariance: do a sequence's routing decisions change when it shares a batch?

DODOCO aggregates per-sequence counts into any batch size afterwards; that is exact only if a
sequence routes the same alone as batched. This measures, on a sample, the fraction of routing
decisions (token x layer x top-k slot) whose expert differs between the two, for this model and dtype.
"""

from __future__ import annotations

import numpy as np


def changed_decisions(alone: np.ndarray, batched: np.ndarray) -> int:
    """Slots whose expert set differs: ``sum over (token, layer) of K - |set(alone) & set(batched)|``.

    alone, batched: ``[T, L, K]`` expert ids of the same tokens (order within K ignored).
    """
    a = np.sort(alone.astype(np.int64), axis=-1)
    b = np.sort(batched.astype(np.int64), axis=-1)
    K = a.shape[-1]
    # |intersection| of two sorted rows without duplicates = matches of each a in b
    hits = (a[..., :, None] == b[..., None, :]).any(-1).sum(-1)
    return int((K - hits).sum())


def measure(run_forward, ids, batch_size: int) -> dict:
    """Run the first ``batch_size`` sequences of ``ids`` batched and one by one; compare decisions.

    ``run_forward(ids[B, T]) -> topk[B*T, L, K]`` runs the model under a capture with traces.
    """
    sample = ids[: max(1, min(batch_size, len(ids)))]
    batched = run_forward(sample)
    alone = np.concatenate([run_forward(sample[i : i + 1]) for i in range(len(sample))])
    changed = changed_decisions(alone, batched)
    decisions = int(np.prod(alone.shape))
    token_layers = alone.shape[0] * alone.shape[1]
    differ = int((np.sort(alone, -1) != np.sort(batched, -1)).any(-1).sum())
    return {
        "sample_sequences": len(sample),
        "batch_size": len(sample),
        "decisions": decisions,
        "changed_decisions": changed,
        "changed_fraction": changed / decisions if decisions else 0.0,
        "token_layers_with_change": differ,
        "token_layer_fraction": differ / token_layers if token_layers else 0.0,
    }
