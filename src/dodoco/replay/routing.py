"""Token-level routing of replay cases: each source rank's top-k in physical expert ids (no torch).

Dispatchers that take token-level routing (Megatron-Core's token dispatchers, PyTorch's NVSHMEM
all_to_all_vdev_2d, DeepEP) and the received-rows check of every dispatcher need, per source rank,
the experts each of its tokens chose. They come from the run's token traces where it has them,
otherwise ``synth_topk`` reproduces each source rank's per-expert counts exactly.

Physical experts: rank r holds ``slots[r]`` physical experts, numbered contiguously
[sum(slots[:r]), sum(slots[:r+1])), as Megatron and DeepEP lay them out. A placement's rank r holds
the logical experts e with ``copies[e, r] > 0``, in ascending order; a token choosing a replicated
expert goes to the replica ``dodoco.ep.traffic.token_destinations`` picks (global token index in
rank order), as an EPLB deployment's logical-to-physical map does. Every dispatcher's splits then
come from the top-k (``copy_splits``, ``dedup_splits``), so they agree with the rows that move.

Shape legend: T tokens, E routed (logical) experts, K experts per token, N EP ranks.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dodoco.ep.layout import Placement
from dodoco.errors import DodocoError
from dodoco.ep.steps import spread
from dodoco.replay.plan import ReplayCase, synth_topk

__all__ = [
    "attach_topk",
    "block_counts",
    "copy_splits",
    "dedup_splits",
    "physical_map",
    "physical_placement",
    "rank_topk_from_counts",
    "to_physical",
    "tokens_of",
]


def physical_map(p: Placement) -> tuple[np.ndarray, np.ndarray]:
    """One layer's placement -> (phys_of int64 [E, N], slots int64 [N]).

    phys_of[e, r]: the physical id of logical expert e's (first) copy on rank r, -1 where r holds none.
    """
    copies = p.copies  # [E, N]
    E, N = copies.shape
    slots = copies.sum(axis=0).astype(np.int64)
    base = np.concatenate([[0], np.cumsum(slots)[:-1]])
    phys = np.full((E, N), -1, dtype=np.int64)
    for r in range(N):
        held = np.repeat(np.arange(E), copies[:, r])  # slots of rank r, by logical expert
        first = np.unique(held, return_index=True)
        phys[first[0], r] = base[r] + first[1]
    return phys, slots


def physical_placement(slots) -> Placement:
    """The one-hot placement of physical experts: expert p on the rank whose slot range holds it."""
    slots = np.asarray(slots, dtype=np.int64)
    N, E = slots.shape[0], int(slots.sum())
    rank_of = np.repeat(np.arange(N), slots)
    share = np.zeros((E, N))
    share[np.arange(E), rank_of] = 1.0
    return Placement("physical", N, share, np.ones(E, dtype=np.int64), slots)


def to_physical(topk_by_rank, p: Placement) -> tuple[list[np.ndarray], np.ndarray]:
    """Logical top-k per source rank -> (physical top-k per source rank, slots [N]).

    topk_by_rank[i]: int [T_i, K] logical experts of rank i's tokens (one layer); replicas chosen by
    ``token_destinations`` with global token indices in rank order (as ``copy_traffic_from_tokens``).
    """
    from dodoco.ep.traffic import token_destinations

    phys, slots = physical_map(p)
    out, offset = [], 0
    for t in topk_by_rank:
        t = np.asarray(t, dtype=np.int64)
        dest = token_destinations(t, p, token_ids=offset + np.arange(t.shape[0]))
        out.append(phys[t, dest].astype(np.int32))
        offset += t.shape[0]
    return out, slots


def block_counts(splits, slots) -> np.ndarray:
    """Per-source physical-expert counts from rank-level splits: [N, N] -> int64 [N, sum(slots)].

    Rows source i sends to rank j are spread as evenly as possible over j's slots[j] experts.
    """
    splits, slots = np.asarray(splits, dtype=np.int64), np.asarray(slots, dtype=np.int64)
    N = splits.shape[0]
    return np.stack([np.concatenate([spread(int(splits[i, j]), int(slots[j]), 0) for j in range(N)]) for i in range(N)])


def rank_topk_from_counts(counts, K: int, what: str) -> list[np.ndarray]:
    """Top-k per source rank reproducing counts[N, E] exactly -> [int32 [T_i, K]] (T_i = sum/K).

    A count that is not whole tokens (sum not a multiple of K), or an expert chosen by more than every
    token, cannot be expressed as token-level routing: DodocoError naming ``what``.
    """
    out = []
    for i, c in enumerate(np.asarray(counts, dtype=np.int64)):
        total = int(c.sum())
        if total % K:
            raise DodocoError(
                f"{what}: rank {i}'s counts sum to {total}, not a multiple of K={K}: they are not "
                "whole tokens, so no top-k routing reproduces them"
            )
        T = total // K
        if (c > T).any():
            raise DodocoError(
                f"{what}: rank {i} sends {int(c.max())} rows to one expert but has only {T} "
                f"tokens of K={K}: lower the skew, or replay with more experts per rank"
            )
        out.append(synth_topk(c, T, K).astype(np.int32))
    return out


def copy_splits(topk_by_rank, slots) -> np.ndarray:
    """Rows (per-expert copies) rank i sends to rank j from physical top-k -> int64 [N, N]."""
    from dodoco.ep.traffic import copy_traffic_from_tokens

    return copy_traffic_from_tokens(topk_by_rank, physical_placement(slots))


def dedup_splits(topk_by_rank, slots) -> np.ndarray:
    """Distinct (token, destination rank) pairs from physical top-k -> int64 [N, N] (DeepEP's rows)."""
    from dodoco.ep.traffic import dedup_traffic

    return dedup_traffic(topk_by_rank, physical_placement(slots))


def attach_topk(case: ReplayCase, topk_by_rank, slots, source: str) -> ReplayCase:
    """The case with its physical top-k, slots and the splits they imply (``copy_splits``)."""
    topk = tuple(np.asarray(t, dtype=np.int32) for t in topk_by_rank)
    tokens = np.array([t.shape[0] for t in topk], dtype=np.int64)
    return dataclasses.replace(
        case,
        splits=copy_splits(topk, slots),
        topk=topk,
        slots=np.asarray(slots, dtype=np.int64),
        tokens=tokens,
        topk_source=source,
    )


def tokens_of(topk_all, offsets, seqs, layer: int) -> np.ndarray:
    """Token traces of sequences ``seqs`` at one MoE layer: topk_all[T, L, K] -> int64 [T_seqs, K]."""
    offsets = np.asarray(offsets, dtype=np.int64)
    parts = [np.asarray(topk_all[offsets[s] : offsets[s + 1], layer, :]) for s in seqs]
    K = topk_all.shape[-1]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, K), dtype=np.int64)
