"""Decode steps from token traces: one token per sequence, at the same position, per step.

In decode, each of the N*B sequences of a step contributes the one token it generates. DODOCO
forms a decode step at position p from token p of each of the step's N*B sequences (same seeded
sequence order as prefill; rank i holds sequences [i*B, (i+1)*B) of the step), for a fixed set of
positions. The approximation (docs/ep.md): a causal model routes token p identically whether it
is processed in prefill or generated in decode (its hidden state depends only on tokens <= p), so
the prefill trace's routing of token p is the decode routing of that token. What it does not
capture: sampled continuations differ from the observed text, and real decode batches mix
sequences at different positions (continuous batching); positions here are aligned.

Step counts [n_steps, L, E] (n_steps = positions x floor(S / (N*B))) feed the same metric
functions, EP scan and NeuSim export as prefill steps.

Shape legend: S sequences, T tokens, L MoE layers, E routed experts, K experts per token, N EP
ranks, B sequences per rank per step.
"""

from __future__ import annotations

import numpy as np

from dodoco import defaults
from dodoco.ep.placements import FitData, trace_subset
from dodoco.ep.result import ScanResult
from dodoco.ep.scan import scan_sources
from dodoco.ep.steps import StepSource, require_steps, step_order, sum_units
from dodoco.errors import DodocoError

__all__ = ["decode_positions", "decode_scan", "decode_source", "decode_step_counts", "trace_counts"]


def _check_trace(topk, offsets) -> tuple[np.ndarray, np.ndarray]:
    topk, offsets = np.asarray(topk), np.asarray(offsets, dtype=np.int64)
    if topk.ndim != 3:
        raise DodocoError(f"token trace must have shape [T, L, K], got shape {topk.shape}")
    if (
        offsets.ndim != 1
        or offsets.shape[0] < 2
        or offsets[0] != 0
        or offsets[-1] != topk.shape[0]
        or np.any(np.diff(offsets) < 0)
    ):
        raise DodocoError(
            f"offsets must be non-decreasing [S+1] from 0 to T={topk.shape[0]}, got shape {offsets.shape}"
        )
    return topk, offsets


def decode_positions(lengths, n_positions: int = defaults.DECODE_POSITIONS, positions=None) -> np.ndarray:
    """Positions used for decode steps -> int64 [n_pos], each < the shortest sequence length.

    Default: n_positions evenly spaced over [0, min(lengths) - 1] (duplicates dropped). Explicit
    positions at or beyond the shortest sequence raise DodocoError naming both.
    """
    shortest = int(np.min(lengths))
    if shortest < 1:
        raise DodocoError("a sequence has no tokens: drop empty sequences before decode steps")
    if positions is None:
        n = max(1, int(n_positions))
        return np.unique(np.linspace(0, shortest - 1, n).round().astype(np.int64))
    pos = np.unique(np.asarray(positions, dtype=np.int64))
    if pos.size == 0 or pos.min() < 0 or pos.max() >= shortest:
        raise DodocoError(
            f"decode positions {pos.tolist()} must lie in [0, {shortest - 1}]: the "
            f"shortest sequence has {shortest} tokens"
        )
    return pos


def _units(topk, offsets, E: int, positions, order) -> np.ndarray:
    """One-hot decode units -> uint8 [n_pos, S', L, E]: token p of sequence order[j]."""
    tok = offsets[order][None, :] + positions[:, None]  # [n_pos, S']
    experts = topk[tok].astype(np.intp)  # [n_pos, S', L, K]
    if experts.size and experts.max() >= E:
        raise DodocoError(f"token trace names expert {int(experts.max())} but E={E}")
    units = np.zeros(tok.shape + (topk.shape[1], E), dtype=np.uint8)
    np.put_along_axis(units, experts, 1, axis=-1)
    return units


def decode_source(topk, offsets, E: int, positions, seed: int = 0, idx=None) -> StepSource:
    """Decode step source: one block per position, sequences (or only idx) in seeded order."""
    topk, offsets = _check_trace(topk, offsets)
    S = offsets.shape[0] - 1
    idx = np.arange(S) if idx is None else np.asarray(idx)
    order = idx[step_order(idx.shape[0], seed)]
    return StepSource(_units(topk, offsets, int(E), np.asarray(positions), order), topk.shape[2])


def decode_step_counts(
    topk,
    offsets,
    E: int,
    seqs_per_step: int,
    positions=None,
    n_positions: int = defaults.DECODE_POSITIONS,
    seed: int = 0,
) -> np.ndarray:
    """Decode step counts: topk[T, L, K], offsets[S+1] -> [n_pos * floor(S / seqs_per_step), L, E].

    Step (p, t) sums token p of the sequences t*P .. (t+1)*P - 1 (P = seqs_per_step = N*B) in
    step_order(S, seed); steps are ordered position-major. Raises DodocoError when S < P.
    """
    topk, offsets = _check_trace(topk, offsets)
    S, P = offsets.shape[0] - 1, int(seqs_per_step)
    require_steps(S, 1, P, "the trace")
    pos = decode_positions(np.diff(offsets), n_positions, positions)
    return decode_source(topk, offsets, E, pos, seed).steps(P)


def trace_counts(topk, offsets, E: int, idx=None) -> np.ndarray:
    """Per-sequence counts from token traces -> int64 [S, L, E] (or only sequences idx)."""
    topk, offsets = _check_trace(topk, offsets)
    S, L = offsets.shape[0] - 1, topk.shape[1]
    idx = np.arange(S) if idx is None else np.asarray(idx)
    seq = np.repeat(np.arange(S), np.diff(offsets))  # token -> sequence
    keep = np.isin(seq, idx)
    rank = np.searchsorted(np.sort(idx), seq[keep])  # position of the sequence among idx
    t = topk[keep].astype(np.int64)  # [T', L, K]
    flat = (rank[:, None, None] * L + np.arange(L)[None, :, None]) * E + t
    return np.bincount(flat.ravel(), minlength=len(idx) * L * E).reshape(len(idx), L, E)


def decode_scan(
    topk,
    offsets,
    E: int,
    ep=defaults.EP,
    batch=defaults.BATCHES,
    placement=defaults.PLACEMENT,
    seed: int = 0,
    *,
    positions=None,
    n_positions: int = defaults.DECODE_POSITIONS,
    fit_counts=None,
    fit_frac: float = 0.5,
    n_boot: int = defaults.N_BOOT,
    strict: bool = False,
    model: str = "",
    condition: str = "",
    seq_len: int = 0,
    **options,
) -> ScanResult:
    """EP scan over decode steps (regime "decode") -> ScanResult; same policy and options as ep_scan.

    Fitted placements are fitted on the prefill counts of the fit sequences (fit_counts[S, L, E]
    when given, else counted from the trace; their traces ride along in FitData) and evaluated on
    decode steps of the others. ``meta["decode_positions"]`` lists the positions.
    Memory: positions x S x L x E bytes for the one-hot units.
    """
    topk, offsets = _check_trace(topk, offsets)
    S = offsets.shape[0] - 1
    pos = decode_positions(np.diff(offsets), n_positions, positions)

    def fit_of(fit_idx):
        load = (
            sum_units(fit_counts, fit_idx)
            if fit_counts is not None
            else trace_counts(topk, offsets, E, fit_idx).sum(axis=0)
        )
        return FitData(load, *trace_subset(topk, offsets, fit_idx))

    def make(idx):
        return decode_source(topk, offsets, E, pos, seed, idx)

    labels = dict(model=model, condition=condition, seq_len=int(seq_len), regime="decode")
    common = dict(seed=seed, fit_frac=fit_frac, n_boot=n_boot, strict=strict, labels=labels, options=options)
    result = scan_sources(S, int(E), make, fit_of, placement, ep, batch, **common)
    result.meta["decode_positions"] = pos.tolist()
    return result
