"""Plain sentences stating what each verdict found, with numbers and 95% intervals.

Each function reads a finished ``Verdict`` (its tables and numbers, nothing else) and returns its
sentences: the headline sentences first (what holds over every run or model), then one sentence
per run, pair or model. Values resting on two steps or fewer are written without an interval and
say how many steps they rest on. docs/findings.md shows examples.
"""

from __future__ import annotations

import numpy as np

from dodoco.findings.verdict import Verdict, num, num_ci, some

__all__ = ["bands_sentences", "ep_sentences", "mock_real_sentences"]


def _pct(x) -> str:
    return f"{100 * x:.1f}%" if np.isfinite(x) else "n/a"


def _range(values, fmt=num) -> str:
    v = [x for x in values if x is not None and np.isfinite(x)]
    if not v:
        return "n/a"
    lo, hi = min(v), max(v)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} to {fmt(hi)}"


def _run(r: dict) -> str:
    return f"{r['model']}/{r['condition']}"


# --- EP invariance ----------------------------------------------------------------------------------


def _ep_headline(v: Verdict) -> str:
    n, thr = v.numbers, v.numbers["threshold"]
    judged = [r for r in v.summary if r["verdict"] != "undetermined"]
    over = [r for r in judged if r["verdict"] == "placement-sensitive"]
    head = f"EP invariance over {n['runs']} run(s) (per-expert max/mean, threshold {thr:.0%} change over N): "
    if not judged:
        return head + "no run could be judged: each has fewer than two EP degrees resting on more than two steps."
    within = [r["max_mean_change"] for r in judged if r["verdict"] == "intrinsic"]
    if not over:
        text = f"the straggler moved by at most {_pct(max(within))} in every judged run: intrinsic to the routing."
    elif len(over) == len(judged):
        text = (
            f"the straggler moved by {_range([r['max_mean_change'] for r in over], _pct)} in every judged run: "
            "placement-sensitive."
        )
    else:
        text = (
            f"the straggler moved by at most {_pct(max(within))} in {len(within)} of {len(judged)} judged runs "
            f"(intrinsic) and by more in {len(over)}: "
            f"{some(_run(r) + ' ' + _pct(r['max_mean_change']) for r in over)}."
        )
    if n["undetermined_runs"]:
        text += f" {n['undetermined_runs']} run(s) could not be judged (too few steps)."
    return head + text


def _ends(v: Verdict, r: dict) -> tuple[dict, dict] | None:
    """Evidence rows of run r at its smallest and largest judged N below E (at N = E every
    placement without replicas puts one expert on each rank: nothing to compare)."""
    rows = [
        e
        for e in v.evidence
        if (e["model"], e["condition"], e["seq_len"]) == (r["model"], r["condition"], r["seq_len"])
        and not e["few_steps"]
        and e["ep"] < e["E"]
    ]
    return (rows[0], rows[-1]) if len(rows) >= 2 else None


def _removes(fractions) -> str:
    """ "removes 12.0% to 95.1%" of the excess skew, "adds 3.0%" when negative, both when mixed."""
    f = [x for x in fractions if np.isfinite(x)]
    if not f:
        return "removes n/a"
    if min(f) >= 0:
        return f"removes {_range(f, _pct)}"
    if max(f) < 0:
        return f"adds {_range([-x for x in f], _pct)}"
    return f"removes between {_pct(min(f))} and {_pct(max(f))} (negative: adds)"


def _skew_headline(v: Verdict) -> str | None:
    base = v.numbers["baseline"]
    ends = [(r["kind"], e) for r in v.summary if (e := _ends(v, r))]  # (kind, (smallest N row, largest))
    if not ends:
        return None
    rising = sum(1 for _, (a, b) in ends if b.get(f"skew_{base}", 0) > a.get(f"skew_{base}", 0))
    parts = []
    for kind, label in (("real", "under real text"), ("mock", "under mock")):
        own = [e for k, e in ends if k == kind]
        if own:
            first = _range([a.get(f"skew_{base}") for a, _ in own])
            last = _range([b.get(f"skew_{base}") for _, b in own])
            parts.append(
                f"{label} it was {first} at each run's smallest judged N and {last} at its largest (N < E)"
                if not parts
                else f"{label}, {first} and {last}"
            )
    text = f"Receiver skew under {base} placement rose with N in {rising} of {len(ends)} run(s): {'; '.join(parts)}."
    largest = {(b["model"], b["condition"], b["seq_len"], b["ep"]) for _, (_, b) in ends}
    removed = []
    for p in v.numbers["placements"][1:]:
        fr = [
            x["fraction_removed"]
            for x in v.tables["removal"]
            if x["placement"] == p
            and (x["model"], x["condition"], x["seq_len"], x["ep"]) in largest
            and np.isfinite(x["fraction_removed"])
        ]
        if fr:
            removed.append(f"{p} {_removes(fr)}")
    if removed:
        text += f" At that largest N, {' and '.join(removed)} of the {base} skew's excess over 1."
    return text


def _ep_detail(v: Verdict, r: dict) -> str:
    base = v.numbers["baseline"]
    own = [
        e
        for e in v.evidence
        if (e["model"], e["condition"], e["seq_len"]) == (r["model"], r["condition"], r["seq_len"])
    ]
    head = f"{_run(r)} (seq_len {r['seq_len']}, B={r['batch']}, {r['part']} units): "
    few = [str(e["ep"]) for e in own if e["few_steps"]]
    tail = f" N={','.join(few)} rest on two steps or fewer: shown without interval, not judged." if few else ""
    ends = _ends(v, r)
    if ends is None:
        return head + "fewer than two EP degrees rest on more than two steps: not judged." + tail
    a, b = ends
    text = (
        f"per-expert max/mean {num_ci(a['max_mean'], a['max_mean_lo'], a['max_mean_hi'])} at N={a['ep']} and "
        f"{num_ci(b['max_mean'], b['max_mean_lo'], b['max_mean_hi'])} at N={b['ep']}, a "
        f"{_pct(r['max_mean_change'])} change over N={r['judged_eps']}: {r['verdict']}."
    )
    if f"skew_{base}" in a:
        text += (
            f" Receiver skew ({base}) {num_ci(a[f'skew_{base}'], a[f'skew_{base}_lo'], a[f'skew_{base}_hi'])} "
            f"at N={a['ep']}, {num_ci(b[f'skew_{base}'], b[f'skew_{base}_lo'], b[f'skew_{base}_hi'])} at "
            f"N={b['ep']}"
        )
        others = [
            x for x in v.tables["removal"] if x["ep"] == b["ep"] and _run(x) == _run(r) and x["seq_len"] == r["seq_len"]
        ]
        text += (
            "".join(
                f"; {x['placement']} {num_ci(x['skew'], x['skew_lo'], x['skew_hi'])} "
                f"({_removes([x['fraction_removed']])})"
                for x in others
            )
            + "."
        )
    return head + text + tail


def ep_sentences(v: Verdict) -> list[str]:
    """Headline (straggler over N; receiver skew and what each placement removes), then one per run."""
    out = [_ep_headline(v)]
    skew = _skew_headline(v)
    if skew:
        out.append(skew)
    return out + [_ep_detail(v, r) for r in v.summary]


# --- mock vs real -----------------------------------------------------------------------------------


def _pair(r: dict) -> str:
    return f"{r['model']} {r['mock']} vs {r['real']}"


def _slope(r: dict, kind: str) -> str:
    s, lo, hi = r[f"{kind}_slope"], r[f"{kind}_slope_lo"], r[f"{kind}_slope_hi"]
    if not np.isfinite(s):
        return f"no {kind} slope (too few steps)"
    sig = "significant" if r[f"{kind}_significant"] else "not significant"
    return f"{kind} slope {num_ci(s, lo, hi, digits=4)} ({sig})"


def mock_real_sentences(v: Verdict) -> list[str]:
    """Headline (ratio range and direction; trends under mock and real; the verdict), then one per pair."""
    n = v.numbers
    rows = [r for r in v.summary if np.isfinite(r["ratio"])]
    out = []
    if rows:
        lo_r, hi_r = min(rows, key=lambda r: r["ratio"]), max(rows, key=lambda r: r["ratio"])
        if len(rows) == 1:
            out.append(
                f"Gini(mock)/Gini(real) at B={lo_r['ratio_batch']}: "
                f"{num_ci(lo_r['ratio'], lo_r['ratio_lo'], lo_r['ratio_hi'], lo_r['ratio_steps'])} "
                f"({_pair(lo_r)})."
            )
        else:
            out.append(
                f"Gini(mock)/Gini(real) at B={n['ref_batch']} (or the largest B below it a run has) ranges "
                f"from {num_ci(lo_r['ratio'], lo_r['ratio_lo'], lo_r['ratio_hi'], lo_r['ratio_steps'])} "
                f"({_pair(lo_r)}) to "
                f"{num_ci(hi_r['ratio'], hi_r['ratio_lo'], hi_r['ratio_hi'], hi_r['ratio_steps'])} "
                f"({_pair(hi_r)}) over "
                f"{len(rows)} pairs: the mock is significantly more concentrated (interval above 1) in "
                f"{n['mock_more_concentrated']} and less (below 1) in {n['mock_less_concentrated']}."
            )
    trend = v.tables["trend"]
    ranges = {k: _range([t["slope"] for t in trend if t["kind"] == k], lambda x: num(x, 4)) for k in ("mock", "real")}
    out.append(
        f"Batch-size trend (slope of per-step Gini per doubling of B, 95% bootstrap interval): significant in "
        f"{n['mock_significant']} of {n['mock_runs']} mock run(s) (slopes {ranges['mock']}) and in "
        f"{n['real_significant']} of {n['real_runs']} real-text run(s) (slopes {ranges['real']})."
    )
    flagged = [r for r in v.summary if r["verdict"] == "fabricated by mock"]
    if flagged:
        out.append(
            f"A trend significant under mock and not under real text, i.e. fabricated by the mock, in "
            f"{len(flagged)} of {len(v.summary)} pairs: {some(_pair(r) for r in flagged)}."
        )
    elif v.verdict == "undetermined":
        out.append("No pair could be judged: the runs have too few steps at most batch sizes for a slope.")
    else:
        both = sum(r["verdict"] == "trend in both" for r in v.summary)
        out.append(
            f"No trend appears only under mock tokens (none fabricated by the mock); {both} of "
            f"{len(v.summary)} pairs show a significant trend under both."
        )
    for r in v.summary:
        ratio = (
            f"ratio {num_ci(r['ratio'], r['ratio_lo'], r['ratio_hi'], r['ratio_steps'])} at B={r['ratio_batch']}"
            if np.isfinite(r["ratio"])
            else "no common batch size"
        )
        out.append(
            f"{_pair(r)} (seq_len {r['seq_len']}): {ratio}; {_slope(r, 'mock')}, {_slope(r, 'real')}: {r['verdict']}."
        )
    return out


# --- bands ------------------------------------------------------------------------------------------


def _certainty(r: dict, low: float, high: float) -> str:
    if r["certainty"] == "few steps":
        return f"not sure: {r['judged_on']} {num(r['judged_gini'])} rests on {r['steps']} step(s), no interval"
    value = num_ci(r["judged_gini"], r["judged_lo"], r["judged_hi"])
    line = {
        "persistently concentrated": f"above {high}",
        "data-resilient": f"below {low}",
        "intermediate": f"above {low}",
    }[r["band"]]
    verb = "lies" if r["certainty"] == "sure" else "straddles the threshold, not clearly"
    return f"{r['certainty']}: {r['judged_on']} {value} {verb} {line}"


def bands_sentences(v: Verdict) -> list[str]:
    """Per seq_len: each model's band and how sure, then the data-derived grouping."""
    n, out = v.numbers, []
    for g in v.tables["grouping"]:
        own = [r for r in v.summary if r["seq_len"] == g["seq_len"]]
        at = f", B={n['batch']}" if n.get("batch") else ""
        out.append(
            f"Bands at seq_len {g['seq_len']}{at} (data-resilient: Gini <= {n['low']} on "
            f"{n['resilient_condition']}; persistently concentrated: >= {n['high']} on every real condition): "
            + "; ".join(f"{r['model']} {r['band']} ({_certainty(r, n['low'], n['high'])})" for r in own)
            + "."
        )
        if g["groups"] > 1:
            groups = " | ".join(
                ", ".join(r["model"] for r in own if r["data_group"] == k) for k in range(1, g["groups"] + 1)
            )
            sep = (
                "the gap is larger than the spread inside each group"
                if g["groups_separated"]
                else "the gap is smaller than the spread inside a group, so the split is weak"
            )
            out.append(
                f"The data-derived grouping (largest gap in mean real-text Gini, {num(g['group_gap'])}) "
                f"splits them as {groups}; {sep}."
            )
    return out
