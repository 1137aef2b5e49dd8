"""Which ranks' expert loads to run: each rank's real per-expert tokens of a run's steps. Pure numpy.

A step of EP degree N and B sequences per rank comes from the run's one step former
(``ep.steps.run_source(run, seed).steps(N*B)``; a window aggregate is one step) under the placement named and the
one evaluation policy (a fitted placement is fitted on one part of the sequences and every step
comes from the other: ``dodoco.ep.placements.evaluated_source``). Expert e's c_e tokens of a step
go to the ranks that hold it; a replicated expert's tokens are split over its replicas as evenly as
whole tokens allow (``local_loads``). For each chosen step and layer the busiest, median and
lightest rank by tokens are kept (``rank_cases``), with the step's balanced control: the same
tokens spread evenly over the rank's experts (``balanced_loads``).

Shape legend: S sequences, L MoE layers, E routed experts, N EP ranks, B sequences per rank per
step, G physical experts of a rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dodoco.config import pick
from dodoco.ep.steps import spread
from dodoco.errors import DodocoError

__all__ = ["WHICH", "RankCase", "balanced_loads", "local_loads", "rank_cases", "step_loads"]

WHICH = ("busiest", "median", "lightest")


@dataclass(frozen=True)
class RankCase:
    """One rank of one step and layer: ``loads`` int64 [G] tokens per physical expert it holds."""

    model: str
    condition: str
    N: int
    B: int
    step: int
    layer: int
    rank: int
    which: str
    placement: str
    part: str
    loads: np.ndarray = field(repr=False)
    step_tokens: int = 0  # assignments of the whole step (all ranks)

    @property
    def tokens(self) -> int:
        return int(self.loads.sum())

    def key(self) -> dict:
        names = "model condition N B step layer rank which placement part"
        return {**pick(self, names), "experts": int(self.loads.shape[0]), **pick(self, "tokens step_tokens")}


def local_loads(c, placement) -> list[np.ndarray]:
    """Tokens per physical expert of each rank: c[E] tokens per expert, placement of one layer
    (share[E, N]) -> N arrays int64 [G_r] (rank r's experts in expert order, a replica each). An
    expert with r_e replicas gives each c_e // r_e tokens and the remainder to its first replicas."""
    c = np.asarray(c, dtype=np.int64)
    copies = placement.copies  # [E, N]
    if copies.ndim != 2 or copies.shape[0] != c.shape[0]:
        raise DodocoError(f"placement is for {copies.shape[-2]} experts, the loads have {c.shape[0]}")
    if np.all(copies.sum(1) == 1):  # one copy of every expert: each rank's experts in expert order
        rank_of = copies.argmax(1)
        return [c[rank_of == r] for r in range(copies.shape[1])]
    per_replica = [spread(int(c[e]), int(copies[e].sum()), 0) for e in range(c.shape[0])]
    used = np.zeros(c.shape[0], dtype=np.int64)
    out = []
    for r in range(copies.shape[1]):
        mine = []
        for e in np.flatnonzero(copies[:, r]):
            k = int(copies[e, r])
            mine.extend(per_replica[e][used[e] : used[e] + k])
            used[e] += k
        out.append(np.asarray(mine, dtype=np.int64))
    return out


def balanced_loads(loads) -> np.ndarray:
    """The balanced control of a rank: its tokens spread evenly over its experts -> int64 [G]."""
    loads = np.asarray(loads, dtype=np.int64)
    return spread(int(loads.sum()), loads.shape[0], 0)


def step_loads(run, N: int, B: int, placement: str = "contiguous", seed: int = 0, max_steps: int | None = 1):
    """(steps int64 [n, L, E] of the evaluated part, Placement for N ranks, part) of a run."""
    from dodoco.ep.placements import evaluated_source, plan_placement
    from dodoco.ep.steps import require_steps, run_source

    counts = np.asarray(run.counts)
    plan, src = evaluated_source([placement], counts, seed, source=run_source(run, seed))
    p, part = plan_placement(placement, N, counts, plan), plan.part
    if src.n_steps(N * B) == 0:
        require_steps(src.n_units, N, B, f"run {run.path}" + (" (held-out part)" if part != "all" else ""))
    steps = src.steps(N * B)
    n = steps.shape[0] if max_steps is None else min(steps.shape[0], int(max_steps))
    return np.asarray(steps[:n], dtype=np.int64), p, part


def _pick(tokens: np.ndarray, which) -> dict:
    order = np.argsort(tokens, kind="stable")
    pos = {"busiest": order[-1], "median": order[(len(order) - 1) // 2], "lightest": order[0]}
    return {w: int(pos[w]) for w in which}


def rank_cases(
    run,
    N: int,
    B: int,
    *,
    placement: str = "contiguous",
    layers=None,
    max_steps: int | None = 1,
    seed: int = 0,
    which=WHICH,
) -> list[RankCase]:
    """The chosen ranks of each step and layer of a run at EP degree N, batch B -> [RankCase]."""
    bad = [w for w in which if w not in WHICH]
    if bad:
        raise DodocoError(f"unknown rank choice {bad[0]!r}: choose from {', '.join(WHICH)}")
    steps, p, part = step_loads(run, N, B, placement, seed, max_steps)
    L = steps.shape[1]
    layers = list(range(L)) if layers is None else [int(x) for x in layers]
    if any(not 0 <= x < L for x in layers):
        raise DodocoError(f"--layers {layers} out of range: the run has L={L} MoE layers (0..{L - 1})")
    out = []
    for k in range(steps.shape[0]):
        for layer in layers:
            per_rank = local_loads(steps[k, layer], p.layer(layer))
            tokens = np.array([x.sum() for x in per_rank])
            for w, r in _pick(tokens, which).items():
                out.append(
                    RankCase(
                        run.model,
                        run.condition,
                        N,
                        B,
                        k,
                        layer,
                        r,
                        w,
                        placement,
                        part,
                        per_rank[r],
                        int(steps[k, layer].sum()),
                    )
                )
    return out
