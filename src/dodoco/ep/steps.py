"""Steps: the one place that forms them from per-unit counts.

A step is what one forward pass of EP degree N processes: B units (sequences, or one token of each
sequence in decode) on each of N ranks, N*B units in all. Units are taken in the fixed seeded
order ``step_order(S, seed)``; step t is units [t*N*B, (t+1)*N*B) of that order and rank i holds
units [i*B, (i+1)*B) of the step; the last S mod N*B units are dropped. ``require_steps`` is the
one N*B <= S check (``StepSource.check`` applies it to a source). A window aggregate (an engine's
counts summed over a window: one step of unknown composition) is one step for every N and B, split
evenly over the N source ranks (``window_source``, ``source_split == "uniform"``). ``run_source``
is a run's source (a window's when the run is one), built once per run and seed: every consumer
takes its steps from a ``StepSource`` and none branches on the run's granularity. Every sum is held
in a dtype that cannot overflow (64-bit integers where a narrow one could wrap). docs/ep.md.

Shape legend: S units (sequences), L MoE layers, E routed experts, N EP ranks, B units per rank per
step, P = N*B units per step, G units per group (a level).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np

from dodoco.errors import DodocoError

__all__ = [
    "StepSource",
    "WindowSource",
    "feasible_pairs",
    "require_steps",
    "run_source",
    "source_of",
    "step_order",
    "spread",
    "sum_units",
    "uniform_split",
    "window_source",
]


def step_order(S: int, seed: int) -> np.ndarray:
    """The fixed seeded order of S units -> int64 [S]: np.random.default_rng(seed).permutation(S)."""
    return np.random.default_rng(seed).permutation(int(S))


def require_steps(S: int, N: int, B: int, what: str = "the run") -> None:
    """The one N*B <= S check: DodocoError unless N, B >= 1 and the S units of ``what`` (e.g.
    "run runs/x", "the held-out part") hold one step of N*B."""
    N, B, S = int(N), int(B), int(S)
    if N < 1 or B < 1:
        raise DodocoError(f"EP degree and batch must be >= 1, got EP={N}, batch={B}: give positive integers")
    if N * B > S:
        raise DodocoError(
            f"EP={N} x batch={B} needs {N * B} sequences per step but {what} has {S}: "
            f"observe more sequences or lower the EP degree / --batch"
        )


def sum_units(counts, idx=None) -> np.ndarray:
    """counts[S, ...] summed over units idx (default all) -> int64 [...].

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
        out += counts[idx[a : a + step]].sum(axis=0, dtype=counts.dtype)
    return out


def _level_dtype(max_value: int, narrowest=np.uint8) -> np.dtype:
    """Narrowest unsigned dtype (at least ``narrowest``) that holds sums up to max_value."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if np.dtype(dt).itemsize >= np.dtype(narrowest).itemsize and max_value < np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def spread(total: int, N: int, start: int) -> np.ndarray:
    """total units over N slots as evenly as possible; the extra units go to slots start, start+1, ..."""
    row = np.full(N, total // N, dtype=np.int64)
    extra = total - int(row.sum())
    row[(start + np.arange(extra)) % N] += 1
    return row


def uniform_split(c, N: int, K: int = 1) -> np.ndarray:
    """Even integer split of counts c[..., L, E] over N source ranks, in whole tokens of K -> int64
    [..., N, L, E].

    Per layer, the assignments sorted by expert (positions a = 0 .. T*K - 1, T = sum(c) / K tokens)
    are dealt to tokens a mod T, and token t is held by rank t mod N (``replay.plan.synth_topk``
    deals them the same way). Every rank gets floor or ceil of c / N of each expert; rank totals
    are whole tokens (floor or ceil of T / N, times K) and sum to c exactly. With K = 1 this is the
    largest-remainder rounding of c / N with the leftovers dealt in turn (expert order, ranks 0, 1,
    ..., N-1, 0, ...). A layer whose total is not a multiple of K is split as K = 1.
    """
    c = np.asarray(c).astype(np.int64)
    N, K = int(N), int(K)
    total = c.sum(axis=-1, keepdims=True)  # [..., L, 1]
    T = np.where(total % K == 0, total // K, total)  # tokens per layer
    T = np.maximum(T, 1)
    i = np.arange(N).reshape((N,) + (1,) * c.ndim)  # [N, 1, ..., 1]

    def held(x):  # positions a in [0, x) with (a mod T) mod N == i -> [N, ..., L, E]
        def upto(y):  # b in [0, y) with b mod N == i
            return y // N + (i < y % N)

        return (x // T) * upto(T) + upto(x % T)

    end = np.cumsum(c, axis=-1)
    return np.moveaxis(held(end) - held(end - c), 0, -3)


class StepSource:
    """Step sums at every group size G (a level), from per-unit counts level1[blocks, U, L, E].

    Units are sequences (prefill: one block, U = S in the seeded order) or one token of each
    sequence at a fixed position (decode: one block per position). A step of N*B units is
    formed inside a block, never across blocks; rank i holds units [i*B, (i+1)*B) of the step.
    level(G)[b, g] = sum of units [g*G, (g+1)*G) of block b (the remainder of a block is dropped);
    each level is summed from the largest cached level that divides it. ``source_split`` is
    "observed": the source-rank split is the units each rank really held. ``order`` int64 [U]: the
    unit ids (rows of the run's counts) in step order, for consumers of per-unit data (traces).
    """

    source_split = "observed"

    def __init__(self, level1: np.ndarray, unit_total: int, narrowest=np.uint8, order=None):
        # unit_total: the largest assignments of one unit in one layer; G * unit_total bounds every
        # sum over a level-G row (expert counts, rank loads, totals), so that dtype holds them.
        self._unit_total, self._narrowest = int(unit_total), narrowest
        self._levels = {1: level1}
        self._totals: dict[int, np.ndarray] = {}
        self.order = np.arange(level1.shape[1]) if order is None else np.asarray(order, dtype=np.int64)

    def like(self, level1: np.ndarray) -> "StepSource":
        """A source over other per-unit values (e.g. rank loads [blocks, U, L, N]) with the same
        units and sum bounds."""
        return StepSource(level1, self._unit_total, self._narrowest, self.order)

    @property
    def n_units(self) -> int:
        """Units per block (S for prefill)."""
        return int(self._levels[1].shape[1])

    def dtype(self, G: int) -> np.dtype:
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
                cache[G] = np.add(x[:, 0 : 2 * n : 2], x[:, 1 : 2 * n : 2], dtype=dtype)
            else:
                cache[G] = x[:, : n * g].reshape((x.shape[0], n, g) + x.shape[2:]).sum(axis=2, dtype=dtype)
        return cache[G]

    def level(self, G: int) -> np.ndarray:
        """[blocks, U // G, L, E] sums of G consecutive units."""
        return self._sum_from(self._levels, G, self.dtype(G))

    def n_steps(self, P: int) -> int:
        """Steps of P units in all (blocks x U // P; 0 for P < 1)."""
        return int(self._levels[1].shape[0]) * (self.n_units // int(P)) if int(P) >= 1 else 0

    def check(self, N: int, B: int, what: str = "the run") -> None:
        """``require_steps`` for this source: DodocoError unless it holds a step of N*B units."""
        if int(N) < 1 or int(B) < 1 or not self.n_steps(int(N) * int(B)):
            require_steps(self.n_units, N, B, what)
            raise DodocoError(f"{what} has no step of EP={N} x batch={B}: observe more sequences")

    def steps(self, P: int) -> np.ndarray:
        """steps[n, L, E]: the counts of every step of P units (block-major)."""
        x = self.level(P)
        return x.reshape((-1,) + x.shape[2:])

    def rank_rows(self, N: int, B: int, x=None) -> np.ndarray:
        """x[blocks, U // B, ...] (default level(B)) -> [n, N, ...]: step t's rank i's row."""
        x = self.level(B) if x is None else x
        n = self.n_units // (N * B)
        return x[:, : n * N].reshape((x.shape[0] * n, N) + x.shape[2:])

    def ranks(self, N: int, B: int) -> np.ndarray:
        """src[n, N, L, E] for steps of N*B: the counts of rank i's B units summed."""
        return self.rank_rows(N, B)

    def totals(self, N: int, B: int) -> np.ndarray:
        """totals[n, N, L] = ranks(N, B).sum(-1) in int64: all assignments of rank i's tokens."""
        if 1 not in self._totals:
            self._totals[1] = self._levels[1].sum(axis=-1, dtype=np.int64)
        return self.rank_rows(N, B, self._sum_from(self._totals, B, np.int64))

    def require_units(self, what: str) -> None:
        """Nothing: an observed source has per-unit data (a window's raises, naming ``what``)."""

    def holders(self, N: int, B: int) -> np.ndarray:
        """int64 [n, N, B]: the unit ids (``order``) rank i holds in step t (block-major, as steps)."""
        self.require_units("per-unit data")
        n = self.n_units // (N * B)
        held = self.order[: n * N * B].reshape(n, N, B)
        return np.tile(held, (int(self._levels[1].shape[0]), 1, 1))

    def unit_steps(self, N: int, B: int) -> tuple[np.ndarray, np.ndarray]:
        """Where each unit goes in the steps of one block -> (step int64 [U'], rank int64 [U']) indexed
        by unit id (U' = largest id + 1): unit u is in steps(N*B)[step[u]] on source rank rank[u]; -1
        for units not in a step (dropped, or not in this source)."""
        held = self.holders(N, B)[: self.n_units // (N * B)]  # the first block's steps
        size = int(self.order.max(initial=-1)) + 1
        step, rank = np.full(size, -1, dtype=np.int64), np.full(size, -1, dtype=np.int64)
        step[held] = np.arange(held.shape[0])[:, None, None]
        rank[held] = np.arange(N)[None, :, None]
        return step, rank

    def aggregate(self) -> np.ndarray:
        """int64 [L, E]: every unit of every block summed (the remainder included)."""
        x = self._levels[1]
        return sum_units(x.reshape((-1,) + x.shape[2:]))


class WindowSource(StepSource):
    """One step of known total counts window[L, E] for every N*B, split evenly over the source ranks
    in whole tokens of K (``uniform_split``). It has no per-unit data (``holders``)."""

    source_split = "uniform"

    def __init__(self, window: np.ndarray, K: int = 1, unit_total: int | None = None):
        window = np.asarray(window, dtype=np.int64)
        total = int(window.sum(axis=-1).max(initial=0)) if unit_total is None else unit_total
        super().__init__(window[None, None], total, order=np.zeros(1, dtype=np.int64))
        self.K = int(K)

    def like(self, level1: np.ndarray) -> "WindowSource":
        return WindowSource(np.asarray(level1)[0, 0], 1, self._unit_total)

    @property
    def n_units(self) -> int:
        return 1

    def dtype(self, G: int) -> np.dtype:
        return np.dtype(np.int64)

    def level(self, G: int) -> np.ndarray:
        return self._levels[1]

    def n_steps(self, P: int) -> int:
        return 1 if int(P) >= 1 else 0

    def rank_rows(self, N: int, B: int, x=None) -> np.ndarray:
        """[1, N, ...]: the window's counts split evenly over N ranks in whole tokens of K (or other
        per-unit values x[1, 1, ...] split evenly)."""
        if x is None:
            return uniform_split(self._levels[1][0, 0], N, self.K)[None]
        return uniform_split(np.asarray(x)[0, 0], N)[None]

    def totals(self, N: int, B: int) -> np.ndarray:
        return self.ranks(N, B).sum(axis=-1, dtype=np.int64)

    def require_units(self, what: str) -> None:
        raise DodocoError(
            f"a window aggregate has no per-unit data ({what} needs it): its units were summed "
            "before import; import per-pass dumps (with token traces) for this analysis"
        )

    def aggregate(self) -> np.ndarray:
        return self._levels[1][0, 0].copy()


def _check_counts(counts) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[0] == 0:
        raise DodocoError(f"counts must have shape [S, L, E] with S >= 1, got shape {counts.shape}")
    if counts.dtype.kind not in "ui" or (counts.dtype.kind == "i" and counts.size and counts.min() < 0):
        raise DodocoError(f"counts must be non-negative integers, got dtype {counts.dtype}")
    return counts


def source_of(counts, seed: int = 0, idx=None, order=None) -> StepSource:
    """Prefill step source over counts[S, L, E] (optionally only units idx) in the seeded order
    step_order(len(idx), seed) of idx, or in an explicit ``order`` (unit indices) when given."""
    counts = _check_counts(counts)
    if order is None:
        idx = np.arange(counts.shape[0]) if idx is None else np.asarray(idx)
        order = idx[step_order(idx.shape[0], seed)]
    order = np.asarray(order, dtype=np.int64)
    level1 = counts[order]
    totals = level1.sum(axis=-1, dtype=np.int64)  # [S', L]
    unit_total = int(totals.max(initial=0))
    # uint32 at least: narrower levels would only slow the sums down
    dt = _level_dtype(unit_total, np.uint32)
    src = StepSource(np.ascontiguousarray(level1, dtype=dt)[None], unit_total, np.uint32, order)
    src._totals[1] = totals[None]  # already computed for unit_total
    return src


def window_source(counts, K: int = 1) -> WindowSource:
    """Step source of a window aggregate counts[W, L, E] (rows summed in int64 into one window):
    one step for every N*B; ranks(N, B) splits it evenly in whole tokens of K (``uniform_split``);
    source_split "uniform", which every output that uses the split states."""
    return WindowSource(sum_units(_check_counts(counts)), K)


_RUN_SOURCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def run_source(run, seed: int = 0) -> StepSource:
    """The step source of a run (``store.Run``: counts [S, L, E], granularity) over all its units in
    the seeded order; a window aggregate's is ``window_source``. Built once per run and seed."""
    from dodoco.store.manifest import Granularity

    cache = _RUN_SOURCES.setdefault(run, {})
    if seed not in cache:
        window = run.granularity is Granularity.WINDOW
        K = run.manifest.routing.K or 1
        cache[seed] = window_source(run.counts, K) if window else source_of(run.counts, seed)
    return cache[seed]


def feasible_pairs(src: StepSource, ep: Iterable[int], batch: Iterable[int], what: str = "the run"):
    """(N, B) pairs with at least one step in ``src`` -> (pairs, skipped [(N, B, reason)]), both
    sorted by B then N; reasons are require_steps' message. N or B < 1 raises DodocoError."""
    pairs, skipped = [], []
    for B in sorted({int(b) for b in batch}):
        for N in sorted({int(n) for n in ep}):
            try:
                src.check(N, B, what)
            except DodocoError as err:
                if N < 1 or B < 1:
                    raise
                skipped.append((N, B, str(err)))
                continue
            pairs.append((N, B))
    return pairs, skipped
