"""Fit placements on one part of the sequences and measure, on the other, what dispatch sends.

Placements come from the registry (``build_placement``) under the one policy
(``evaluation_plan``): fitted on the fit part (counts for EPLB, token traces for the trace
placements, ``fit_data``) and evaluated on the held-out sequences, in steps of N*B sequences in
the seeded order (the held-out units' ``StepSource.unit_steps``: rank i holds sequences
[i*B, (i+1)*B) of a step), for prefill
(every token of the step's sequences) and decode (token p of each sequence, for a few positions
p; ``dodoco.ep.decode``).
Per step, summed over MoE layers unless per layer:

- ``dedup``: deduplicated dispatch rows, distinct (token, destination rank) pairs whose rank is
  not the token's own (what DeepEP sends over links); bytes = rows x H x bytes per element.
- ``forward``: rows sent if a token's hidden state were forwarded from the ranks that processed
  it in the previous MoE layer (the ExFlow dispatch; layer 0 from its own rank): per token and
  layer, the ranks of D_l(t) not in D_{l-1}(t). A model of that dispatch, not a measured one.
- ``receiver_skew`` (per layer): max/mean over ranks of the assignments received (per copy);
  ``dedup_recv_skew``: the same for the deduplicated rows received over links;
  ``max_mean``: the per-expert straggler (placement-independent; the same for every placement).

Savings over EPLB are per step, 1 - x / x_eplb, averaged over steps with a 95% bootstrap interval
over steps (``bootstrap_mean_ci``). docs/beyond-counts.md.

Shape legend: S sequences, T tokens, L MoE layers, E routed experts, K experts per token, N EP
ranks, B sequences per rank per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dodoco import defaults
from dodoco.ep.coactivation import check_trace
from dodoco.ep.decode import decode_positions, trace_counts
from dodoco.ep.layout import Placement
from dodoco.ep.placements import PLACEMENTS, FitData, build_placement, evaluation_plan, trace_subset
from dodoco.ep.steps import StepSource, source_of
from dodoco.ep.trace_placement import rank_masks
from dodoco.ep.traffic import distinct_destinations, pair_counts, token_destinations
from dodoco.errors import DodocoError
from dodoco.metrics.imbalance import max_mean
from dodoco.metrics.stats import bootstrap_mean_ci

__all__ = ["TraceEvalOptions", "evaluate_placements", "step_tokens", "traffic_per_step"]

REGIMES = ("prefill", "decode")


@dataclass(frozen=True, kw_only=True)
class TraceEvalOptions:
    """ep: EP degrees N; batch: B; placements evaluated (the savings are against "eplb");
    regimes: "prefill" and/or "decode"; slack: the trace placements' load bound; positions:
    decode positions per sequence; fit_frac, seed, n_boot: split, step order, bootstrap."""

    ep: tuple[int, ...] = defaults.EP
    batch: int = 1
    placements: tuple[str, ...] = ("contiguous", "eplb", "coact", "affinity")
    regimes: tuple[str, ...] = REGIMES
    slack: float = 0.1
    positions: int = defaults.DECODE_POSITIONS
    fit_frac: float = 0.5
    seed: int = 0
    n_boot: int = defaults.N_BOOT


def step_tokens(units: StepSource, offsets, N: int, B: int, regime: str, positions: int = defaults.DECODE_POSITIONS):
    """Tokens of the steps of a (held-out) trace -> (tok, step, src, n_steps): int64 [T'] each.

    units: the step source of the units evaluated (their counts, e.g. ``trace_counts``, in the
    seeded order), offsets[S+1] their token offsets; unit u is in step t, on source rank i, as
    ``units.unit_steps`` places it (the scan's steps: N*B per step, the remainder dropped).
    prefill: every token of a step's units; decode: token p of each unit, steps position-major
    (positions from ``decode_positions``).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    S = offsets.size - 1
    units.check(N, B, "the held-out part")
    ustep, urank = units.unit_steps(N, B)
    n, lens = units.n_steps(N * B), np.diff(offsets)
    if regime == "prefill":
        unit = np.repeat(np.arange(S), lens)
        keep = ustep[unit] >= 0
        return np.flatnonzero(keep), ustep[unit][keep], urank[unit][keep], n
    if regime != "decode":
        raise DodocoError(f"unknown regime '{regime}': use prefill or decode")
    held = np.flatnonzero(ustep >= 0)
    pos = decode_positions(lens, positions)
    tok = (offsets[held][None, :] + pos[:, None]).ravel()
    step = (np.arange(pos.size)[:, None] * n + ustep[held][None, :]).ravel()
    return tok, step, np.tile(urank[held], pos.size), n * pos.size


def _per_step_max_mean(key, n: int, width: int) -> np.ndarray:
    """max/mean (``ep.loads.skew``) of bincount(key) reshaped [n, width] -> [n]."""
    return max_mean(np.bincount(key, minlength=n * width).reshape(n, width))


def traffic_per_step(topk, tok, step, src, n: int, placement: Placement, E: int) -> dict:
    """Dispatch of the tokens tok[T'] (step[T'], source rank src[T']) under a placement ->
    {"dedup": [n], "forward": [n], "receiver_skew": [n, L], "dedup_recv_skew": [n, L],
    "max_mean": [n, L]} (see the module docstring)."""
    N, L = placement.num_ranks, np.shape(topk)[1]
    prev = np.left_shift(np.uint64(1), src.astype(np.uint64))  # the home rank of each token
    out = {k: np.zeros(n) for k in ("dedup", "forward")}
    for k in ("receiver_skew", "dedup_recv_skew", "max_mean"):
        out[k] = np.zeros((n, L))
    for l in range(L):
        ids = np.asarray(topk[tok, l]).astype(np.int64)  # [T', K]
        dst = token_destinations(ids, placement.layer(l), tok)
        d, first = distinct_destinations(dst)
        remote = first & (d != src[:, None])  # distinct destination ranks that are not the token's own
        got = pair_counts(step, d, n, N, remote)  # [n, N] deduplicated rows received over links
        out["dedup"] += got.sum(axis=1)
        m = rank_masks(dst, N)
        out["forward"] += np.bincount(step, weights=np.bitwise_count(m & ~prev), minlength=n)
        prev = m
        out["receiver_skew"][:, l] = _per_step_max_mean((step[:, None] * N + dst).ravel(), n, N)
        out["dedup_recv_skew"][:, l] = max_mean(got)
        out["max_mean"][:, l] = _per_step_max_mean((step[:, None] * E + ids).ravel(), n, E)
    return out


def _build(name: str, E: int, N: int, fit: FitData, slack: float) -> Placement:
    """A placement from the registry; the trace placements get the load-balance slack."""
    options = {"slack": slack} if "slack" in PLACEMENTS[name].options else {}
    return build_placement(name, E, N, fit if PLACEMENTS[name].fitted else None, **options)


def _saving(x, ref, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean over steps of 1 - x/ref, with its 95% bootstrap interval (steps where ref = 0 left out)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(ref > 0, 1.0 - x / ref, np.nan)
    lo, hi = bootstrap_mean_ci(s, n_boot=n_boot, seed=seed)
    return float(np.nanmean(s)), float(lo), float(hi)


def _summary(name, per, ref, opts) -> dict:
    row = {
        "placement": name,
        "steps": int(per["dedup"].size),
        "dedup_rows": float(per["dedup"].mean()),
        "forward_rows": float(per["forward"].mean()),
    }
    for k in ("receiver_skew", "dedup_recv_skew", "max_mean"):
        row[k] = float(np.nanmean(per[k]))
    if ref is not None:
        for k in ("dedup", "forward"):
            mean, lo, hi = _saving(per[k], ref[k], opts.n_boot, opts.seed)
            row.update({f"{k}_saving": mean, f"{k}_saving_lo": lo, f"{k}_saving_hi": hi})
    return row


def evaluate_placements(topk, offsets, E: int, opts: TraceEvalOptions = TraceEvalOptions()):
    """Fit every placement of opts on the fit sequences and evaluate it held out -> (rows, skipped).

    topk[T, L, K], offsets[S+1]: the run's token traces. rows: one dict per (regime, ep,
    placement) with the per-step means of the module docstring and, for every placement, its
    savings over EPLB (``*_saving`` with ``_lo`` / ``_hi``). skipped: (ep, placement, reason).
    """
    topk = check_trace(topk, E, offsets)
    names = list(dict.fromkeys(("eplb",) + tuple(opts.placements)))
    plan = evaluation_plan(names, np.size(offsets) - 1, opts.seed, opts.fit_frac)
    ftopk, foffsets = trace_subset(topk, offsets, plan.fit_idx)
    if ftopk.max(initial=0) >= E:
        raise DodocoError(
            f"token trace names expert {int(ftopk.max())} but E={E}: pass the model's number of routed experts"
        )
    fit = FitData(trace_counts(ftopk, foffsets, E).sum(axis=0), ftopk, foffsets)
    etopk, eoffsets = trace_subset(topk, offsets, plan.eval_idx)
    units = source_of(trace_counts(etopk, eoffsets, E), opts.seed)  # the held-out units' steps
    rows, skipped = [], []
    for N in opts.ep:
        built = {}
        for name in names:
            try:
                built[name] = _build(name, E, N, fit, opts.slack)
            except DodocoError as err:
                skipped.append((N, name, str(err)))
        for regime in opts.regimes:
            try:
                tok, step, src, n = step_tokens(units, eoffsets, N, opts.batch, regime, opts.positions)
            except DodocoError as err:
                skipped.append((N, regime, str(err)))
                continue
            per = {k: traffic_per_step(etopk, tok, step, src, n, p, E) for k, p in built.items()}
            for name in opts.placements:
                if name in per:
                    row = _summary(name, per[name], per.get("eplb"), opts)
                    rows.append({"regime": regime, "ep": N, "batch": opts.batch, "part": plan.part, **row})
    return rows, skipped
