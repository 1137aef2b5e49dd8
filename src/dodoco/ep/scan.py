"""EP scan: every EP degree N, batch B and placement from per-sequence counts, as a tidy table.

A step is N*B sequences in the fixed seeded order (``step_order``); rank i holds sequences
[i*B, (i+1)*B) of the step. Per step and MoE layer the scan computes

- ``gini``, ``max_mean``: per-expert imbalance of the step's summed counts (independent of N's
  split and of the placement, but emitted under each placement so every row set is complete);
- ``max_mean_phys``: per-physical-expert max/mean (a replica serves load / r_e), only for
  placements with replicas (it equals max_mean otherwise);
- ``receiver_skew``: max_r R_r / mean_r R_r of the rank loads R = c @ share;
- ``send_max_mean``, ``recv_max_mean``: max/mean over ranks of the assignments each rank sends /
  receives over links (per-expert copies, the diagonal s[i, i] excluded), N >= 2 only;

then summarises over steps (mean, p50, p95, bootstrap 95% interval: ``metrics.steps.summarise``),
per layer and for the model (layer -1: per step, the mean over layers). Fitted placements (EPLB)
are fitted on one part of the sequences (``fit_eval_split``) and evaluated on the other; by default
every placement of the call is evaluated on that same held-out part (``eval_groups``).

Speed: step sums are formed once per N*B product, each from the largest cached product dividing
it; rank loads are reshape-sums, folds from 2N to N, or gathers (``RankMap``); every statistic of
one product shares one bootstrap matrix product; products run on worker threads. docs/ep.md.

Shape legend: S sequences, L MoE layers, E routed experts, N EP ranks, B sequences per rank per step.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from dodoco.ep.loads import RankMap, replica_max_mean, skew
from dodoco.ep.placement import FITTED, PLACEMENTS, fit_placement
from dodoco.errors import DodocoError, did_you_mean
from dodoco.metrics.imbalance import gini, max_mean
from dodoco.metrics.steps import STATISTICS, step_order, summarise
from dodoco.metrics.table import SCHEMA

__all__ = ["DEFAULT_BATCH", "DEFAULT_EP", "StepSource", "ep_scan", "eval_groups", "expert_metrics",
           "fit_eval_split", "require_sequences", "run_scan", "scan_plan", "scan_source",
           "skipped_reasons", "step_metrics", "sum_sequences"]

DEFAULT_EP = (4, 8, 16, 32)
DEFAULT_BATCH = (1, 2, 4, 8, 16, 32)
_CHUNK = 1 << 16  # elements per chunk of expert_metrics (fits the L2 cache)
_THREADS = max(1, min(4, os.cpu_count() or 1))  # worker threads of one scan
_SKIPPED_KEY = b"ep_scan_skipped"


def fit_eval_split(S: int, frac: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split S sequences: (fit_idx, eval_idx), sorted int64, disjoint, covering 0..S-1.

    The first round(frac*S) of a seeded permutation (np.random.default_rng(seed + 1)) fit, the rest
    evaluate. Raises DodocoError when either part would be empty.
    """
    S = int(S)
    n_fit = int(round(float(frac) * S))
    if not 0 < n_fit < S:
        raise DodocoError(f"fit fraction {frac} of S={S} sequences leaves an empty fit or evaluation "
                          f"part; use 0 < frac < 1 and at least 2 sequences")
    perm = np.random.default_rng(int(seed) + 1).permutation(S)
    return np.sort(perm[:n_fit]), np.sort(perm[n_fit:])


def sum_sequences(counts, idx=None) -> np.ndarray:
    """counts[S, ...] summed over sequences idx (default all) -> int64 [...].

    Sums chunks of rows in the counts' own unsigned dtype where that cannot overflow (several
    times faster than casting every element to int64), then adds the chunk sums in int64.
    """
    counts = np.asarray(counts)
    idx = np.arange(counts.shape[0]) if idx is None else np.asarray(idx)
    if counts.dtype.kind != "u" or counts.size == 0:
        return counts[idx].sum(axis=0, dtype=np.int64)
    step = int(max(1, min(256, np.iinfo(counts.dtype).max // (int(counts.max()) + 1))))
    out = np.zeros(counts.shape[1:], dtype=np.int64)
    for a in range(0, len(idx), step):
        out += counts[idx[a:a + step]].sum(axis=0, dtype=counts.dtype)
    return out


def require_sequences(S: int, N: int, B: int, what: str = "sequences") -> None:
    """Raise DodocoError unless S sequences hold at least one step of N*B sequences."""
    if N * B > S:
        raise DodocoError(f"EP={N} x batch={B} needs {N * B} {what} per step but the condition "
                          f"has {S}: observe at least {N * B} {what} or lower EP/batch")


def scan_plan(S: int, ep: Iterable[int], batch: Iterable[int]):
    """Feasible (N, B) pairs for S sequences -> (pairs, skipped) with skipped [(N, B, reason)]."""
    pairs, skipped = [], []
    for N in sorted({int(n) for n in ep}):
        for B in sorted({int(b) for b in batch}):
            if N < 1 or B < 1:
                raise DodocoError(f"EP degree and batch must be >= 1, got EP={N}, batch={B}")
            if N * B > S:
                skipped.append((N, B, f"EP={N} x batch={B} needs {N * B} sequences per step, "
                                      f"have {S}"))
            else:
                pairs.append((N, B))
    return pairs, skipped


def _level_dtype(max_value: int, narrowest=np.uint8):
    """Narrowest unsigned dtype (at least ``narrowest``) that holds sums up to max_value."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if np.dtype(dt).itemsize >= np.dtype(narrowest).itemsize and max_value < np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


class StepSource:
    """Step sums at every group size G (a level), from per-unit counts level1[blocks, U, L, E].

    Units are sequences (prefill: one block, U = S in the seeded order) or one token of each
    sequence at a fixed position (decode: one block per position). A step of N*B units is
    formed inside a block, never across blocks; rank i holds units [i*B, (i+1)*B) of the step.
    level(G)[b, g] = sum of units [g*G, (g+1)*G) of block b (the remainder of a block is dropped);
    each level is summed from the largest cached level that divides it.
    """

    def __init__(self, level1: np.ndarray, unit_total: int, narrowest=np.uint8):
        # unit_total: the largest assignments of one unit in one layer; G * unit_total bounds every
        # sum over a level-G row (expert counts, rank loads, totals), so that dtype holds them.
        self._unit_total, self._narrowest = int(unit_total), narrowest
        self._levels = {1: level1}
        self._totals: dict[int, np.ndarray] = {}

    def dtype(self, G: int):
        """The dtype of level(G): holds every sum over one of its rows."""
        return _level_dtype(self._unit_total * G, self._narrowest)

    @staticmethod
    def _sum_from(cache: dict, G: int, dtype) -> np.ndarray:
        """cache[G] from the largest cached level dividing G (pairs as one add: 3x faster)."""
        if G not in cache:
            base = max(p for p in cache if G % p == 0)
            x, g = cache[base], G // base
            n = x.shape[1] // g
            if g == 2:
                cache[G] = np.add(x[:, 0:2 * n:2], x[:, 1:2 * n:2], dtype=dtype)
            else:
                cache[G] = x[:, : n * g].reshape((x.shape[0], n, g) + x.shape[2:]).sum(
                    axis=2, dtype=dtype)
        return cache[G]

    def level(self, G: int) -> np.ndarray:
        """[blocks, U // G, L, E] sums of G consecutive units."""
        return self._sum_from(self._levels, G, self.dtype(G))

    def n_steps(self, P: int) -> int:
        """Steps of P units per block."""
        return self._levels[1].shape[1] // P

    def steps(self, P: int) -> np.ndarray:
        """steps[n_blocks * n, L, E]: the counts of every step of P units."""
        x = self.level(P)
        return x.reshape((-1,) + x.shape[2:])

    def rank_rows(self, N: int, B: int, x=None) -> np.ndarray:
        """x[blocks, U // B, ...] (default level(B)) -> [steps, N, ...]: step t's rank i's row."""
        x = self.level(B) if x is None else x
        n = self.n_steps(N * B)
        return x[:, : n * N].reshape((x.shape[0] * n, N) + x.shape[2:])

    def ranks(self, N: int, B: int) -> np.ndarray:
        """src[n, N, L, E] for steps of N*B: the counts of rank i's B units summed."""
        return self.rank_rows(N, B)

    def totals(self, N: int, B: int) -> np.ndarray:
        """totals[n, N, L] = ranks(N, B).sum(-1): all assignments of rank i's tokens."""
        if 1 not in self._totals:
            self._totals[1] = self._levels[1].sum(axis=-1, dtype=np.int64)
        return self.rank_rows(N, B, self._sum_from(self._totals, B, np.int64))


def scan_source(counts, seed: int = 0, idx=None, order=None) -> StepSource:
    """Prefill step source over counts[S, L, E] (optionally only sequences idx) in seeded order,
    or in an explicit ``order`` (sequence indices) when given."""
    counts = np.asarray(counts)
    if counts.dtype.kind not in "ui" or (counts.dtype.kind == "i" and counts.size
                                         and counts.min() < 0):
        raise DodocoError(f"counts must be non-negative integers, got dtype {counts.dtype}")
    if order is None:
        idx = np.arange(counts.shape[0]) if idx is None else np.asarray(idx)
        order = idx[step_order(idx.shape[0], seed)]
    level1 = counts[np.asarray(order)]
    totals = level1.sum(axis=-1, dtype=np.int64)  # [S', L]
    unit_total = int(totals.max(initial=0))
    # uint32 at least: narrower levels would only slow the sums down
    dt = _level_dtype(unit_total, np.uint32)
    src = StepSource(np.ascontiguousarray(level1, dtype=dt)[None], unit_total, np.uint32)
    src._totals[1] = totals[None]  # already computed for unit_total
    return src


def step_metrics(local, totals, steps, rmap: RankMap, R=None) -> dict[str, np.ndarray]:
    """Placement metrics per step and layer -> {metric: float64 [n, L]}.

    local[n, N, L]: assignments of rank i's tokens to experts on rank i (s[i, i], RankMap.local);
    totals[n, N, L]: all assignments of rank i's tokens; steps[n, L, E]: the step's counts;
    R[n, L, N]: the rank loads rmap.loads(steps) if already known.
    """
    if R is None:
        R = rmap.loads(steps, dtype=steps.dtype if steps.dtype.kind == "u" else None)
    out = {"receiver_skew": skew(R)}
    if (rmap.placement.replicas > 1).any():
        out["max_mean_phys"] = replica_max_mean(steps, rmap.placement)
    if rmap.N >= 2 and local is not None:
        send = np.swapaxes(totals - local, 1, 2)  # [n, L, N]
        recv = R - np.swapaxes(local, 1, 2)
        out["send_max_mean"] = skew(send)
        out["recv_max_mean"] = skew(recv)
    return out


#: Placements where rank r at N holds exactly ranks {2r, 2r+1} (contiguous) or {r, r+N}
#: (round_robin) at 2N, so loads at N are a fold of loads at 2N.
_FOLD = {"contiguous": lambda R, N: R[..., 0::2] + R[..., 1::2],
         "round_robin": lambda R, N: R[..., :N] + R[..., N:]}
#: Up to this N, nested placements take rank loads from per-unit loads at the largest such N
#: (one pass over the units, then sums and folds); above it, own-rank loads come from a gather
#: of each rank's E/N experts (a 1/N pass).
_FOLD_MAX_N = 16


def _fold_to(name: str, R: np.ndarray, N: int) -> np.ndarray | None:
    """Fold loads R[..., N0] down to N ranks (N0 / N a power of two), else None."""
    while R.shape[-1] > N and R.shape[-1] % 2 == 0:
        R = _FOLD[name](R, R.shape[-1] // 2)
    return R if R.shape[-1] == N else None


def _unit_loads(src, pairs, maps, names) -> dict:
    """{name: StepSource of rank loads at N0 per unit}: N0 = largest scanned N <= _FOLD_MAX_N.

    Loads are linear, so the loads of a level-G row are the sums of its units' loads: one pass
    over the units serves every B, every product and (by folding) every N = N0 / 2^k."""
    small = [n for n, _ in pairs if 2 <= n <= _FOLD_MAX_N]
    out = {}
    for name in names:
        if name in _FOLD and small and (name, max(small)) in maps:
            R = maps[(name, max(small))].loads(src.level(1), dtype=src.dtype(1))
            out[name] = StepSource(R, src._unit_total, src._narrowest)
    return out


def _step_loads(steps, P, Ns, maps, names, units) -> dict:
    """{(name, N): R[n, L, N]} rank loads of one product's steps, folded down N where nested."""
    out: dict = {}
    for name in names:
        R, prev = None, None
        for N in sorted(Ns, reverse=True):
            if (name, N) not in maps:
                continue
            base = units[name].steps(P) if name in units else None
            folded = _fold_to(name, base, N) if base is not None else None
            if folded is not None:
                R = folded
            elif name in _FOLD and prev == 2 * N:
                R = _FOLD[name](R, N)
            else:
                R = maps[(name, N)].loads(steps, dtype=steps.dtype)
            out[(name, N)], prev = R, N
    return out


def _own_load(src, N, B, name, rmap, units) -> np.ndarray:
    """own[n, N, L]: the load of each step's rank i on rank i itself (s[i, i]) for (N, B)."""
    R = _fold_to(name, units[name].level(B), N) if name in units else None
    if R is None:  # sum each rank's own experts only
        return rmap.local(src.ranks(N, B), True, src.dtype(B))
    v = src.rank_rows(N, B, R)  # [n, N src, L, N dst]
    return np.swapaxes(np.diagonal(v, axis1=1, axis2=3), 1, 2)


def expert_metrics(steps, threads: int = 2) -> dict[str, np.ndarray]:
    """Per-expert gini and max_mean of steps[..., E] -> {metric: float64 [...]}.

    The metrics.imbalance functions applied to cache-sized row chunks on ``threads`` threads
    (numpy releases the GIL): the same values, several times faster than on the whole array.
    """
    x = np.asarray(steps)
    rows = x.reshape(-1, x.shape[-1])
    out = {"gini": np.empty(rows.shape[0]), "max_mean": np.empty(rows.shape[0])}
    step = max(1, _CHUNK // rows.shape[1])

    def work(a: int) -> None:
        out["gini"][a:a + step] = gini(rows[a:a + step])
        out["max_mean"][a:a + step] = max_mean(rows[a:a + step])

    starts = range(0, rows.shape[0], step)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(work, starts))
    else:
        for a in starts:
            work(a)
    return {k: v.reshape(x.shape[:-1]) for k, v in out.items()}


def _with_model(v: np.ndarray) -> np.ndarray:
    """v[n, L] -> [n, L+1]: column 0 the model level (NaN-ignoring mean over layers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(v, axis=1) if np.isnan(v).any() else v.mean(axis=1)
    return np.concatenate([m[:, None], v], axis=1)


def _summarise(V: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """STATISTICS of the columns of V[n, M] -> [len(STATISTICS), M]; constant columns directly."""
    out = np.empty((len(STATISTICS), V.shape[1]))
    const = np.all(V == V[:1], axis=0)  # e.g. receiver skew at N = 1
    out[:, const] = V[0, const]
    if not const.all():
        stats = summarise(V[:, ~const], n_boot=n_boot, seed=seed)
        out[:, ~const] = np.stack([stats[s] for s in STATISTICS])
    return out


def _rows(series: dict, n_boot: int, seed: int) -> dict[str, list]:
    """Rows of series {column: (keys, values[n, L])} sharing n: each column is summarised once
    and its statistics are emitted under every (B, N, placement, metric) key in ``keys``."""
    names = list(series)
    L1 = next(iter(series.values()))[1].shape[1] + 1
    V = np.concatenate([_with_model(series[k][1]) for k in names], axis=1)
    block = _summarise(V, n_boot, seed).reshape(len(STATISTICS), len(names), L1)
    block = block.transpose(1, 0, 2)  # [columns, stats, L+1]
    keys = [(j, key) for j, k in enumerate(names) for key in series[k][0]]
    per = len(STATISTICS) * L1
    cols = {
        "batch": np.repeat([key[0] for _, key in keys], per),
        "ep": np.repeat([key[1] for _, key in keys], per),
        "placement": np.repeat(np.array([key[2] for _, key in keys], dtype=object), per),
        "metric": np.repeat(np.array([key[3] for _, key in keys], dtype=object), per),
        "statistic": np.tile(np.repeat(np.array(STATISTICS, dtype=object), L1), len(keys)),
        "layer": np.tile(np.arange(-1, L1 - 1), len(keys) * len(STATISTICS)),
        "value": block[[j for j, _ in keys]].ravel(),
    }
    return {k: [v] for k, v in cols.items()}


def _placements(names, E, pairs, fit_load, strict, kwargs, reasons) -> dict:
    """{(name, N): RankMap} for every feasible placement and rank count; the rest go to reasons."""
    maps = {}
    for name in names:
        for N in sorted({n for n, _ in pairs}):
            try:
                kw = kwargs if name in FITTED else {}
                p = fit_placement(name, E, N, fit_load if name in FITTED else None, **kw)
            except DodocoError as err:
                if strict:
                    raise
                reasons.append({"ep": N, "batch": None, "placement": name, "reason": str(err)})
                continue
            maps[(name, N)] = RankMap(p)
    return maps


def _product_rows(src, P, pairs_P, maps, names, units, own, n_boot, seed) -> dict:
    """Column chunks of every (N, B) with N*B = P: per-expert and placement metrics, summarised."""
    steps = src.steps(P)
    series: dict = {m: ([], v) for m, v in expert_metrics(steps, threads=1).items()}
    loads = _step_loads(steps, P, [n for n, _ in pairs_P], maps, names, units)
    for N, B in pairs_P:
        totals = src.totals(N, B)
        for name in names:
            if (name, N) not in maps:
                continue
            for m in ("gini", "max_mean"):
                series[m][0].append((B, N, name, m))
            R, local = loads[(name, N)], own.get((N, B, name))
            for m, v in step_metrics(local, totals, steps, maps[(name, N)], R).items():
                series[(B, N, name, m)] = ([(B, N, name, m)], v)
    series = {k: v for k, v in series.items() if v[0]}
    return _rows(series, n_boot, seed) if series else {}


def _scan_set(src, pairs, maps, names, n_boot, seed, cols, threads: int = _THREADS) -> None:
    """Append the rows of one evaluation set (placements ``names``) to cols.

    Every level is summed first; then the (N, B) own-rank loads and the products run on
    ``threads`` threads (numpy releases the GIL), read-only on the cached levels."""
    units = _unit_loads(src, pairs, maps, names)
    products = sorted({N * B for N, B in pairs})
    for source in (src, *units.values()):
        for G in sorted({B for _, B in pairs} | set(products)):
            source.level(G)
    for N, B in pairs:
        src.totals(N, B)
    jobs = [(N, B, name) for N, B in pairs for name in names
            if N >= 2 and (name, N) in maps and src.n_steps(N * B)]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        own = dict(zip(jobs, pool.map(
            lambda j: _own_load(src, j[0], j[1], j[2], maps[(j[2], j[0])], units), jobs)))
        parts = pool.map(lambda P: _product_rows(
            src, P, [(N, B) for N, B in pairs if N * B == P], maps, names, units, own, n_boot,
            seed), products)
        for part in parts:
            for k, v in part.items():
                cols.setdefault(k, []).extend(v)


def eval_groups(S: int, names, fit_frac: float, seed: int, common_eval: bool = True):
    """Which sequences evaluate which placements -> (fit_idx or None, [(eval_idx or None, names)]).

    No fitted placement: all sequences evaluate every placement. Otherwise EPLB is fitted on
    fit_idx and evaluated on eval_idx (fit_eval_split), and with common_eval every placement is
    evaluated on that same held-out part, so rows of different placements compare like with like;
    without it, placements that need no fitting use all S sequences.
    """
    fitted = [n for n in names if n in FITTED]
    if not fitted:
        return None, [(None, list(names))]
    fit_idx, eval_idx = fit_eval_split(S, fit_frac, seed)
    if common_eval:
        return fit_idx, [(eval_idx, list(names))]
    fixed = [n for n in names if n not in FITTED]
    return fit_idx, ([(None, fixed)] if fixed else []) + [(eval_idx, fitted)]


def ep_scan(counts, ep=DEFAULT_EP, batch=DEFAULT_BATCH, placement="contiguous", seed: int = 0,
            *, fit_frac: float = 0.5, common_eval: bool = True, n_boot: int = 1000,
            strict: bool = False, model: str = "", condition: str = "", seq_len: int = 0,
            **placement_kwargs) -> pa.Table:
    """EP scan of counts[S, L, E] (prefill steps) -> tidy pyarrow Table (``metrics.table.SCHEMA``).

    ep: EP degrees N; batch: sequences per rank per step B; placement: a name or names from
    PLACEMENTS (eplb options such as num_redundant go in placement_kwargs). Fitted placements are
    fitted on a fit_frac part of the sequences and evaluated on the rest (see eval_groups for
    common_eval). Pairs with N*B above the sequences available and placements that cannot hold
    (N > E; E + R not divisible by N) are skipped and listed in the schema metadata
    (``skipped_reasons``); with strict=True they raise DodocoError instead.
    """
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[0] == 0:
        raise DodocoError(f"counts must have shape [S, L, E] with S >= 1, got shape {counts.shape}")
    S, _, E = counts.shape
    labels = dict(model=model, condition=condition, seq_len=seq_len, regime="prefill")
    return run_scan(S, E, lambda idx: scan_source(counts, seed, idx),
                    lambda idx: sum_sequences(counts, idx), placement, ep, batch,
                    seed=seed, fit_frac=fit_frac, common_eval=common_eval, n_boot=n_boot,
                    strict=strict, labels=labels, placement_kwargs=placement_kwargs)


def run_scan(S: int, E: int, make_source, fit_load_of, placement, ep, batch, *, seed, fit_frac,
             common_eval, n_boot, strict, labels, placement_kwargs) -> pa.Table:
    """The scan harness shared by the prefill and decode regimes.

    make_source(idx or None) -> a step source over those sequences (steps, ranks, totals);
    fit_load_of(fit_idx) -> load[L, E] that fitted placements are fitted on.
    """
    names = _check_names(placement)
    fit_idx, groups = eval_groups(S, names, fit_frac, seed, common_eval)
    fit_load = None if fit_idx is None else fit_load_of(fit_idx)
    cols: dict[str, list] = {}
    reasons: list[dict] = []
    for idx, group in groups:
        n_avail = S if idx is None else len(idx)
        pairs = _plan_group(n_avail, ep, batch, group, idx is not None, strict, reasons)
        maps = _placements(group, E, pairs, fit_load, strict, placement_kwargs, reasons)
        if pairs:
            _scan_set(make_source(idx), pairs, maps, group, n_boot, seed, cols)
    meta = {"seed": seed, "n_boot": n_boot, "fit_frac": None if fit_idx is None else fit_frac,
            "common_eval": common_eval, "placement_kwargs": dict(placement_kwargs),
            "eval": {",".join(g): ("all" if i is None else "heldout") for i, g in groups}}
    return _table(cols, labels, reasons, meta)


def _check_names(placement) -> list[str]:
    names = [placement] if isinstance(placement, str) else list(placement)
    for name in names:
        if name not in PLACEMENTS:
            raise did_you_mean("placement", name, PLACEMENTS)
    return names


def _plan_group(n_avail, ep, batch, names, heldout, strict, reasons) -> list:
    """Feasible (N, B) pairs for n_avail sequences; the rest raise (strict) or go to reasons."""
    pairs, skipped = scan_plan(n_avail, ep, batch)
    for N, B, why in skipped:
        if strict:
            require_sequences(n_avail, N, B, "held-out sequences" if heldout else "sequences")
        reasons.append({"ep": N, "batch": B, "placement": None, "reason": why})
    return pairs


def _table(cols: dict, labels: dict, reasons: list, meta: dict) -> pa.Table:
    arrays = {k: (np.concatenate(v) if v else np.array([])) for k, v in cols.items()}
    n = len(arrays.get("value", []))
    out = []
    for field in SCHEMA:
        if field.name in arrays:
            a = arrays[field.name]
        elif n == 0:  # nothing fitted (every (N, B) skipped): an empty table, reasons in metadata
            a = np.array([], dtype=object if field.type == pa.string() else np.int64)
        else:
            a = np.full(n, labels[field.name], dtype=object if field.type == pa.string() else None)
        out.append(pa.array(a, field.type))
    md = {_SKIPPED_KEY: json.dumps(reasons).encode(), b"ep_scan": json.dumps(meta).encode()}
    return pa.Table.from_arrays(out, schema=SCHEMA.with_metadata(md))


def skipped_reasons(table: pa.Table) -> list[dict]:
    """What ep_scan skipped (from the schema metadata): dicts (ep, batch, placement, reason);
    placement None for a step too large for the sequences, batch None for a placement that
    cannot hold at that EP."""
    raw = (table.schema.metadata or {}).get(_SKIPPED_KEY)
    return json.loads(raw) if raw else []
