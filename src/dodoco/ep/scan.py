"""EP scan: every EP degree N, batch B and placement from per-unit counts, as a ScanResult.

Steps come from ``dodoco.ep.steps`` (a ``StepSource``: seeded order, or a window aggregate split
evenly over source ranks); the placements and the one fitting policy from ``dodoco.ep.placements``
(fitted placements are fitted on one part of the units and every placement is evaluated on the
held-out part); the per-step values from ``dodoco.ep.scan_loads``. Each value is summarised over
steps (``metrics.stats.summarise``: mean, p50, p95, bootstrap 95% interval, n_steps), per layer and
for the model (layer -1: per step, ``metrics.stats.layer_mean``). docs/ep.md.

Speed: step sums are formed once per N*B product, each from the largest cached product dividing
it; every statistic of one product shares one bootstrap matrix product; products run on worker
threads (numpy releases the GIL).

Shape legend: S units (sequences), L MoE layers, E routed experts, N EP ranks, B units per rank
per step, P = N*B.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dodoco import defaults
from dodoco.ep.loads import RankMap
from dodoco.ep.placements import PLACEMENTS, build_placement, check_placements, evaluation_plan, fit_data
from dodoco.ep.result import ScanResult
from dodoco.ep.scan_loads import expert_metrics, own_load, step_loads, step_metrics, unit_loads
from dodoco.ep.steps import StepSource, feasible_pairs, run_source, source_of
from dodoco.errors import DodocoError
from dodoco.metrics.stats import STATISTICS, layer_mean, summarise

__all__ = ["ep_scan", "scan_sources"]

_THREADS = max(1, min(4, os.cpu_count() or 1))  # worker threads of one scan
_N_STEPS = STATISTICS.index("n_steps")


def _summarise(V: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """STATISTICS of the columns of V[n, M] -> [len(STATISTICS), M]; constant columns directly."""
    out = np.empty((len(STATISTICS), V.shape[1]))
    const = np.all(V == V[:1], axis=0)  # e.g. receiver skew at N = 1
    out[:, const] = V[0, const]
    out[_N_STEPS, const] = V.shape[0]
    if not const.all():
        stats = summarise(V[:, ~const], n_boot=n_boot, seed=seed)
        out[:, ~const] = np.stack([stats[s] for s in STATISTICS])
    return out


def _block(series: dict, n_boot: int, seed: int):
    """Series {column: (keys, values[n, L])} sharing n -> (keys, values[keys, STATISTICS, L+1]):
    each column is summarised once and emitted under every (B, N, placement, metric) in its keys."""
    names = list(series)
    V = np.concatenate(
        [np.concatenate([layer_mean(v)[:, None], v], axis=1) for _, v in (series[k] for k in names)], axis=1
    )
    L1 = V.shape[1] // len(names)
    block = _summarise(V, n_boot, seed).reshape(len(STATISTICS), len(names), L1).transpose(1, 0, 2)
    keys = [(j, key) for j, k in enumerate(names) for key in series[k][0]]
    return [key for _, key in keys], block[[j for j, _ in keys]]


def _product(src, P, pairs_P, maps, names, units, own, n_boot, seed):
    """(keys, values, steps) of every (N, B) with N*B = P: per-expert and placement metrics."""
    steps = src.steps(P)
    series: dict = {m: ([], v) for m, v in expert_metrics(steps, threads=1).items()}
    loads = step_loads(steps, P, [n for n, _ in pairs_P], maps, names, units)
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
    if not series:
        return [], None, 0
    keys, values = _block(series, n_boot, seed)
    return keys, values, steps.shape[0]


def _scan_set(src, pairs, maps, names, n_boot, seed, threads: int = _THREADS) -> list:
    """[(keys, values, n_steps)] of every product of the pairs, on ``threads`` threads.

    Every level is summed first; then the (N, B) own-rank loads and the products run on worker
    threads, read-only on the cached levels."""
    units = unit_loads(src, pairs, maps, names)
    products = sorted({N * B for N, B in pairs})
    for source in (src, *units.values()):
        for G in sorted({B for _, B in pairs} | set(products)):
            source.level(G)
    for N, B in pairs:
        src.totals(N, B)
    jobs = [(N, B, name) for N, B in pairs for name in names if N >= 2 and (name, N) in maps]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        own = dict(zip(jobs, pool.map(lambda j: own_load(src, j[0], j[1], j[2], maps[(j[2], j[0])], units), jobs)))
        return list(
            pool.map(
                lambda P: _product(
                    src, P, [(N, B) for N, B in pairs if N * B == P], maps, names, units, own, n_boot, seed
                ),
                products,
            )
        )


def _placements(names, E, Ns, fit, strict, options, reasons) -> dict:
    """{(name, N): RankMap} for every placement that holds at each N; the rest go to reasons."""
    maps = {}
    for name in names:
        kw = {k: v for k, v in options.items() if k in PLACEMENTS[name].options}
        for N in Ns:
            try:
                p = build_placement(name, E, N, fit, **kw)
            except DodocoError as err:
                if strict:
                    raise
                reasons.append({"ep": N, "batch": None, "placement": name, "reason": str(err)})
                continue
            maps[(name, N)] = RankMap(p)
    return maps


def _plan(names, S, seed, fit_frac, strict, reasons):
    """(EvalPlan, names kept): fitted placements that cannot be fitted on a part of S units (a
    window aggregate has one) are skipped with the reason, unless strict."""
    try:
        return evaluation_plan(names, S, seed, fit_frac), names
    except DodocoError as err:
        if strict:
            raise
        fitted = [n for n in names if PLACEMENTS[n].fitted]
        reasons += [{"ep": None, "batch": None, "placement": n, "reason": str(err)} for n in fitted]
        kept = [n for n in names if n not in fitted]
        return evaluation_plan(kept, S, seed, fit_frac), kept


def _check_options(names, options) -> None:
    taken = {o for n in names for o in PLACEMENTS[n].options}
    bad = sorted(set(options) - taken)
    if bad:
        raise DodocoError(
            f"placement option {', '.join(bad)} is taken by none of {', '.join(names)}"
            f" (they take: {', '.join(sorted(taken)) or 'none'})"
        )


def scan_sources(
    S: int,
    E: int,
    make_source,
    fit_of,
    placement,
    ep,
    batch,
    *,
    seed: int,
    fit_frac: float,
    n_boot: int,
    strict: bool,
    labels: dict,
    options: dict,
) -> ScanResult:
    """The scan harness shared by the prefill and decode regimes.

    make_source(idx or None) -> a StepSource over those units (None: all); fit_of(fit_idx) ->
    FitData that fitted placements are fitted on. Pairs without a step and placements that cannot
    hold are skipped with their reason (strict: DodocoError instead).
    """
    names = check_placements(placement)
    _check_options(names, options)
    reasons: list[dict] = []
    plan, names = _plan(names, S, seed, fit_frac, strict, reasons)
    src: StepSource = make_source(None if plan.fit_idx is None else plan.eval_idx)
    held = plan.part == "held-out"
    pairs, skipped = feasible_pairs(src, ep, batch, "the held-out part" if held else "the run")
    if skipped and strict:
        raise DodocoError(skipped[0][2])
    reasons += [{"ep": N, "batch": B, "placement": None, "reason": why} for N, B, why in skipped]
    fit = fit_of(plan.fit_idx) if held else None
    maps = _placements(names, E, sorted({n for n, _ in pairs}), fit, strict, options, reasons)
    parts = [p for p in _scan_set(src, pairs, maps, names, n_boot, seed) if p[0]] if pairs else []
    keys = [k for p in parts for k in p[0]]
    L = src.level(1).shape[-2]
    values = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, len(STATISTICS), L + 1))
    steps = (
        np.concatenate([np.full(len(p[0]), p[2], dtype=np.int64) for p in parts])
        if parts
        else np.empty(0, dtype=np.int64)
    )
    redundant = {
        f"{n},{N}": int(m.placement.replicas.sum(axis=-1).max() - E)
        for (n, N), m in maps.items()
        if PLACEMENTS[n].fitted
    }
    meta = {
        "seed": seed,
        "n_boot": n_boot,
        "part": plan.part,
        "fit_frac": fit_frac if held else None,
        "source_split": src.source_split,
        "placements": names,
        "options": dict(options),
        "redundant": redundant,
    }
    return ScanResult(keys, values, steps, labels, reasons, meta)


def _full_source(data, counts, seed: int, source) -> StepSource:
    """The source of all units: ``source`` if given, else the run's (a window's is one step), else
    source_of(counts, seed). Built only when every unit is evaluated."""
    if source is not None:
        return source
    return run_source(data, seed) if hasattr(data, "counts") else source_of(counts, seed)


def ep_scan(
    data,
    ep=defaults.EP,
    batch=defaults.BATCHES,
    placement=defaults.PLACEMENT,
    seed: int = 0,
    *,
    fit_frac: float = 0.5,
    n_boot: int = defaults.N_BOOT,
    strict: bool = False,
    source=None,
    tokens=None,
    model: str = "",
    condition: str = "",
    seq_len: int = 0,
    **options,
) -> ScanResult:
    """EP scan of prefill steps -> ScanResult (``.rows()``, ``.series()``, ``.to_table()``).

    data: counts[S, L, E], or a run (``.counts``, labels ``.model``, ``.condition``, ``.seq_len``,
    its step source ``run_source(run, seed)``; traces ``.tokens()`` when a placement is fitted on them). ep: EP degrees N;
    batch: units per rank per step B; placement: names from PLACEMENTS; options (eplb's
    num_redundant, ...) go to the placements that take them. source: the StepSource of all units
    in the seeded order (default: the run's, or ``source_of(counts, seed)``), e.g. a window's.
    tokens: (topk[T, L, K], offsets[S+1]) for placements fitted on traces (default: the run's).
    """
    counts = np.asarray(getattr(data, "counts", data))
    if counts.ndim != 3 or counts.shape[0] == 0:
        raise DodocoError(f"counts must have shape [S, L, E] with S >= 1, got shape {counts.shape}")
    if hasattr(data, "counts"):
        model, condition, seq_len = data.model, data.condition, data.seq_len
    names = check_placements(placement)
    if tokens is None and any(PLACEMENTS[n].fit_on == "traces" for n in names) and getattr(data, "has_tokens", False):
        tokens = data.tokens()

    def make(idx):
        return _full_source(data, counts, seed, source) if idx is None else source_of(counts, seed, idx)

    def fit_of(idx):
        return fit_data(counts, idx, tokens)

    labels = dict(model=model, condition=condition, seq_len=int(seq_len), regime="prefill")
    common = dict(seed=seed, fit_frac=fit_frac, n_boot=n_boot, strict=strict, labels=labels, options=options)
    return scan_sources(counts.shape[0], counts.shape[2], make, fit_of, names, ep, batch, **common)
