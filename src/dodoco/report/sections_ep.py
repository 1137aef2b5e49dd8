"""Report sections on expert parallelism: mitigations, measured vs NeuSim-predicted skew, and the
decode regime (from token traces). They use ``dodoco.ep.mitigations``, ``dodoco.simulate.neusim``
and ``dodoco.ep.decode``; each is ``(runs, ctx) -> Section`` (see report/build.py).

Mitigations are measured on a seeded subset of at most ``MITIGATION_SEQUENCES`` sequences per run
(their step-by-step greedy searches cost far more than a scan), at one EP degree chosen per run
(``mitigation_setup``); the decode regime uses at most ``DECODE_SEQUENCES`` sequences.
"""

from __future__ import annotations

import numpy as np

from dodoco.errors import DodocoError
from dodoco.report import plots
from dodoco.report.build import Figure, Section, SkipSection, Table, register_section
from dodoco.report.html import esc
from dodoco.report.sections import _kind, _label, _scan_line, _step_runs

__all__ = ["mitigation_rows", "mitigation_setup", "subset_traces"]

MITIGATION_SEQUENCES = 1024
DECODE_SEQUENCES = 2048
#: (mitigation, metric) pairs drawn as bars; every row is in the table.
_BARS = (("adaptive_relayout", "receiver_skew"), ("adaptive_relayout", "max_mean"),
         ("sequence_placement", "recv_max_mean"), ("sequence_placement", "local_fraction"),
         ("hierarchical_dispatch", "max_inter_node_recv"), ("hierarchical_dispatch", "total_inter_node"),
         ("topology_mapping", "max_node_bytes"))


def subset_traces(topk, offsets, idx) -> tuple[np.ndarray, np.ndarray]:
    """Token traces of sequences idx (ascending): topk[T, L, K], offsets[S+1] -> (topk', offsets')."""
    offsets = np.asarray(offsets, dtype=np.int64)
    idx = np.sort(np.asarray(idx, dtype=np.int64))
    lengths = np.diff(offsets)[idx]
    new = np.concatenate([[0], np.cumsum(lengths)])
    tok = np.repeat(offsets[idx] - new[:-1], lengths) + np.arange(new[-1])
    return np.asarray(topk)[tok], new


def _subset(run, limit: int, seed: int):
    """(counts[S', L, E], idx or None): a seeded subset of at most ``limit`` sequences."""
    S = run.counts.shape[0]
    if S <= limit:
        return np.asarray(run.counts), None
    idx = np.sort(np.random.default_rng(seed + 2).permutation(S)[:limit])
    return np.asarray(run.counts[idx]), idx


def mitigation_setup(S: int, E: int, B: int) -> tuple[int, int, int]:
    """(N, G, window) for the mitigations of S sequences: N the largest of 16, 8, 4, 2 (<= E) with
    at least 4 steps of N*B sequences, G = 8 GPUs per node at N = 16 else N / 2 (two nodes), and a
    relayout window of min(8, steps // 4) steps. DodocoError when not even N = 2 has 4 steps."""
    for N in (16, 8, 4, 2):
        if N <= E and S >= 4 * N * B:
            steps = S // (N * B)
            return N, (8 if N == 16 else N // 2), max(1, min(8, steps // 4))
    raise DodocoError(f"mitigations need 4 steps of 2 x {B} sequences ({8 * B} sequences), have {S}")


def mitigation_rows(run, B: int, seed: int = 0) -> list[dict]:
    """Every mitigation of one run (dodoco.ep.mitigations) on a subset of its sequences."""
    from dodoco.ep import mitigations as mit

    counts, idx = _subset(run, MITIGATION_SEQUENCES, seed)
    S, _, E = counts.shape
    N, G, W = mitigation_setup(S, E, B)
    K = run.K
    traces = {}
    if run.has_tokens:
        topk, offsets = run.tokens()
        topk, offsets = subset_traces(topk, offsets, idx) if idx is not None else (np.asarray(topk), offsets)
        traces = {"topk": topk, "offsets": offsets}
    rows = mit.adaptive_relayout(counts, N, B, window=W, seed=seed)
    rows += mit.sequence_placement(counts, N, B, seed=seed)
    rows += mit.hierarchical_dispatch(counts, N, B, G, K, seed=seed, **traces)
    rows += mit.topology_mapping(counts, N, B, G, seed=seed)
    lab = {"model": run.model, "condition": run.condition, "kind": _kind(run), "seq_len": run.seq_len,
           "ep": N, "batch": B, "gpus_per_node": G, "sequences": S}
    return [{**lab, **r} for r in rows]


def _bar_label(r: dict) -> str:
    setting = r["setting"].split(",")[0] if r["mitigation"] == "adaptive_relayout" else ""
    return f"{r['mitigation'].replace('_', ' ')}{' ' + setting if setting else ''}: {r['metric']}"


@register_section
def mitigations_section(runs, ctx) -> Section:
    """Mitigations"""
    step = _step_runs(ctx, "mitigations")
    by_label: dict[str, list] = {}
    rows, figs, notes = [], [], []
    for r in step:
        try:
            got = ctx.cached(("mitigations", str(r.path)), lambda r=r: mitigation_rows(r, ctx.ep_batch(r),
                                                                                   ctx.options.seed))
        except DodocoError as exc:
            notes.append(f"{r.path}: {exc}")
            continue
        rows += got
        by_label.setdefault(_label(r, step), []).extend(got)
    if not rows:
        raise SkipSection("; ".join(notes) or "no run fits a mitigation step")
    for label, own in by_label.items():
        relayout = [x for x in own if x["mitigation"] == "adaptive_relayout"]
        keep_r = {x["setting"] for x in relayout if x["setting"].startswith("redundant=0,")} | \
            {max((x["setting"] for x in relayout), key=lambda s: int(s.split(",")[0].split("=")[1]), default="")}
        bars = [x for x in own if (x["mitigation"], x["metric"]) in _BARS
                and (x["mitigation"] != "adaptive_relayout" or x["setting"] in keep_r)]
        cats = list(dict.fromkeys(_bar_label(x) for x in bars))
        conds = list(dict.fromkeys(x["condition"] for x in sorted(bars, key=lambda x: (x["kind"] != "mock",))))
        groups = {c: [next((x["fraction_removed"] for x in bars if x["condition"] == c and _bar_label(x) == k),
                           np.nan) for k in cats] for c in conds}
        first = own[0]
        figs.append(Figure(f"mitigations-{label}", plots.grouped_bars(
            cats, groups, "fraction of the straggler removed",
            f"{label}: EP={first['ep']}, B={first['batch']}, {first['gpus_per_node']} GPUs/node"),
            "fraction of the straggler each mitigation removes, per condition: ratios (x - 1), bytes and the "
            "remote share; 1 = all of it, 0 = none, < 0 = worse"))
    html = (f"<p>Measured on a seeded subset of at most {MITIGATION_SEQUENCES} sequences per run. Ratio metrics: "
            "(base - mitigated) / (base - 1); bytes: (base - mitigated) / base; local fraction: "
            "(mitigated - base) / (1 - base). docs/ep.md derives each mitigation.</p>")
    return Section("Mitigations", html, figs, [Table("mitigations", rows, "every mitigation, setting and metric")],
                   notes=notes)


def _neusim_rows(ctx, run, regime: str = "prefill") -> list[dict]:
    from dodoco.findings.runs import default_eps
    from dodoco.simulate.neusim import neusim_table

    E, K = run.E, run.K
    eps = list(ctx.options.ep or default_eps(E))
    kw = dict(model=run.model, condition=run.condition, seq_len=run.seq_len)
    if regime == "prefill":
        t = neusim_table(None, K, ep=eps, batch=(ctx.ep_batch(run),), seed=ctx.options.seed,
                         source=ctx.source(run), **kw)
    else:
        from dodoco.ep.decode import DEFAULT_POSITIONS, decode_positions, decode_source

        topk, offsets = _decode_traces(run, ctx.options.seed)
        pos = decode_positions(np.diff(offsets), DEFAULT_POSITIONS)
        t = neusim_table(None, K, ep=eps, batch=(ctx.ep_batch(run),), seed=ctx.options.seed, regime="decode",
                         source=decode_source(topk, offsets, E, pos, ctx.options.seed), **kw)
    return t.to_pylist()


@register_section
def neusim_section(runs, ctx) -> Section:
    """Measured vs NeuSim-predicted receiver skew"""
    step = _step_runs(ctx, "the NeuSim comparison")
    rows, panels = [], {}
    for r in step:
        regimes = ["prefill"] + (["decode"] if r.has_tokens else [])
        for regime in regimes:
            got = ctx.cached(("neusim", str(r.path), regime), lambda r=r, g=regime: _neusim_rows(ctx, r, g))
            rows += got
            if got:
                panels.setdefault(f"{_label(r, step)} ({regime})", []).append(
                    {"label": r.condition, "ep": [x["ep"] for x in got],
                     "measured": [x["measured_skew"] for x in got], "predicted": [x["predicted_skew"] for x in got]})
    if not rows:
        raise SkipSection("no EP degree fits the runs' sequences")
    fig = Figure("neusim-skew", plots.measured_vs_predicted(panels),
                 "receiver skew measured on the trace (contiguous placement, mean over steps and layers) and "
                 "predicted by NeuSim's formula from the trace's expert_load_imbalance_factor and "
                 "num_worst_case_experts at each EP")
    html = ("<p>NeuSim's worst-case device holds ceil(E/EP) experts, W of them hot at f x mean load "
            "(docs/neusim.md). <code>dodoco export neusim RUN -o FILE</code> writes the parameters.</p>")
    return Section("Measured vs NeuSim-predicted skew", html, [fig],
                   [Table("neusim", rows, "NeuSim parameters and receiver skew per EP degree")])


def _decode_traces(run, seed: int):
    topk, offsets = run.tokens()
    S = offsets.shape[0] - 1
    if S > DECODE_SEQUENCES:
        idx = np.sort(np.random.default_rng(seed + 3).permutation(S)[:DECODE_SEQUENCES])
        return subset_traces(topk, offsets, idx)
    return np.asarray(topk), np.asarray(offsets)


@register_section
def decode_section(runs, ctx) -> Section:
    """Prefill and decode regimes"""
    from dodoco.ep.decode import decode_scan
    from dodoco.findings.runs import default_eps

    traced = [r for r in _step_runs(ctx, "the decode regime") if r.has_tokens]
    if not traced:
        raise SkipSection("no run has token traces (observe with --traces)")
    o = ctx.options
    mm, rs, rows = {}, {}, []
    placement = "contiguous" if "contiguous" in o.placements else o.placements[0]
    for r in traced:
        B, E = ctx.ep_batch(r), int(r.counts.shape[2])
        topk, offsets = _decode_traces(r, o.seed)
        dec = ctx.cached(("decode", str(r.path)), lambda: decode_scan(
            topk, offsets, E, ep=list(o.ep or default_eps(E)), batch=[B], placement=placement, seed=o.seed,
            n_boot=o.n_boot, model=r.model, condition=r.condition, seq_len=r.seq_len).to_table())
        title = f"{_label(r, traced)} / {r.condition} (B={B})"
        for regime, table in (("prefill", ctx.scan(r)), ("decode", dec)):
            for metric, panels in (("max_mean", mm), ("receiver_skew", rs)):
                line = _scan_line(table, metric, placement, B, regime=regime)
                if line:
                    panels.setdefault(title, []).append({**line, "label": regime, "kind": regime})
                    rows += [{"model": r.model, "condition": r.condition, "regime": regime, "batch": B,
                              "placement": placement, "ep": int(n), "metric": metric, "mean": m, "lo": lo, "hi": hi}
                             for n, m, lo, hi in zip(line["ep"], line["mean"], line["lo"], line["hi"])]
    figs = [Figure("decode-max-mean", plots.ep_lines(mm, "per-expert max/mean"),
                   "per-expert max/mean against N: prefill steps (solid) and decode steps (dashed: one token per "
                   "sequence at the same position)"),
            Figure("decode-receiver-skew", plots.ep_lines(rs, "receiver skew"),
                   f"receiver skew against N ({placement}): prefill solid, decode dashed")]
    html = (f"<p>Decode steps: one token per sequence at {esc('the same positions')} across the N*B sequences "
            "of a step (a causal model routes a token the same way in prefill and decode); docs/ep.md.</p>")
    return Section("Prefill and decode regimes", html, figs, [Table("regimes", rows, "model-level, per N")])
