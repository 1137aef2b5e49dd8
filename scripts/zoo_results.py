#!/usr/bin/env python
"""Observe the five zoo models over the default grid and write docs/zoo-results.md.

    .venv/bin/python scripts/zoo_results.py [--sequences 128 --seq-len 256 --runs runs/zoo-results]

Grid: mock-uniform, mock-ramp, mock-unigram, prose, code, math, multilingual (held-out split) x
batch sizes 1..32 sequences per step. Verdicts come from dodoco.findings (mock vs real: Gini ratio and
batch-size slopes with bootstrap intervals; bands at the reference batch). Every number on the page
is computed here; the sentences comparing with the paper are derived from those numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CONDITIONS = ("mock-uniform", "mock-ramp", "mock-unigram", "prose", "code", "math", "multilingual")
BATCHES = (1, 2, 4, 8, 16, 32)
# The paper's five checkpoints and the bands it reports (abstract, arXiv 2605.20982).
PAPER_BAND = {
    "deepseek_v2": "persistently concentrated",
    "qwen3_5_moe": "persistently concentrated",
    "deepseek_moe": "data-resilient",
    "nemotron_h": "data-resilient",
    "qwen3_moe": "intermediate",
}
PAPER_RATIO_MAX = 2.35


def observe_all(runs: Path, seq_len: int, sequences: int) -> list:
    from dodoco.models.tiny import FAMILIES
    from dodoco.observe.runner import observe
    from dodoco.store import find_runs

    paths = []
    for family in FAMILIES:
        print(f"observing zoo:{family}", flush=True)
        paths += observe(
            f"zoo:{family}",
            list(CONDITIONS),
            seq_len=seq_len,
            sequences=sequences,
            out=runs / family,
            batch_size=16,
            quiet=True,
            overwrite=True,
        )
    return find_runs(paths)


def fmt(x, digits=3) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def md_table(rows: list[dict], columns: list[str], headers: list[str] | None = None) -> str:
    head = headers or columns
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def family_of(model_id: str) -> str:
    return model_id.split(":", 1)[-1]


REAL = ("prose", "code", "math", "multilingual")


def gini_matrix(findings, batch: int) -> list[dict]:
    """Model x condition per-step mean Gini at ``batch``, plus the real-text mean and a mixed-domain column.

    "real mixed": the sequences of the four real-text runs pooled, then formed into steps in a seeded
    order (``step_gini``), so that a step holds sequences of several domains.
    """
    import numpy as np

    from dodoco.findings import step_gini

    rows: dict[str, dict] = {}
    for run in findings.runs:
        row = rows.setdefault(run.model, {"model": family_of(run.model)})
        row[run.condition] = findings.gini_at(run, batch)["gini"]
    for model, row in rows.items():
        row["real mean"] = sum(row[c] for c in REAL) / len(REAL)
        pooled = np.concatenate([r.counts for r in findings.runs if r.model == model and r.condition in REAL])
        row["real mixed"] = float(np.nanmean(step_gini(pooled, (batch,))[batch]))
    return list(rows.values())


def _range(values, digits=2) -> str:
    return f"{min(values):.{digits}f} to {max(values):.{digits}f}"


def _mock_statements(matrix, mvr, batch: int) -> list[str]:
    pairs = [r for r in mvr.tables["ratio"] if r["mock"] == "mock-uniform" and r["at_ref"]]
    over = [r for r in pairs if r["ratio_lo"] > 1]
    under = [r for r in pairs if r["ratio_hi"] < 1]
    top = max(pairs, key=lambda r: r["ratio"])
    by_real = {c: sum(r["ratio_lo"] > 1 for r in pairs if r["real"] == c) for c in REAL}
    n_models = len({r["model"] for r in pairs})
    prose = {family_of(r["model"]): r["ratio"] for r in pairs if r["real"] == "prose"}
    real = [row[c] for row in matrix for c in REAL]
    size = (
        f"the largest, {top['ratio']:.2f}x, stays below the paper's {PAPER_RATIO_MAX}x"
        if top["ratio"] < PAPER_RATIO_MAX
        else f"the largest, {top['ratio']:.2f}x, reaches the paper's {PAPER_RATIO_MAX}x"
    )
    return [
        f"Mock vs real: at B={batch}, Gini(mock-uniform)/Gini(real) spans {_range([r['ratio'] for r in pairs])} over "
        f"the {len(pairs)} model x real-condition pairs: mock-uniform is significantly more concentrated (95% "
        f"interval above 1) in {len(over)} pairs and less concentrated in {len(under)}. Models it overestimates, "
        "per real condition: "
        + ", ".join(f"{c} {n}/{n_models}" for c, n in by_real.items())
        + ". Against prose: "
        + ", ".join(f"{f} {v:.2f}" for f, v in prose.items())
        + f". The paper finds mock tokens overestimating Gini on its five checkpoints, by up to {PAPER_RATIO_MAX}x; "
        f"in the zoo the direction depends on the real condition, and {size} ({family_of(top['model'])}, "
        f"{top['real']}).",
        f"Domains: single-domain real text gives Gini {_range(real)}; steps that mix sequences of the four "
        f"domains give {_range([row['real mixed'] for row in matrix])}, and mock-unigram (real token frequencies, "
        f"no order) {_range([row['mock-unigram'] for row in matrix])}. The zoo's routers sort tokens by domain "
        "and language: a step of one domain's text loads a subset of the experts, while the models were trained "
        "(and balanced) on the four mixed. The paper's resilient checkpoints reach 0.105 and 0.150 on wikitext; "
        f"no zoo model comes near that on any single domain (lowest {min(real):.2f}).",
    ]


def _statements(matrix, mvr, bands_v, batch: int) -> list[str]:
    """Plain sentences from the numbers, each set beside the paper's large-model finding."""
    out = _mock_statements(matrix, mvr, batch)
    fabricated = mvr.numbers.get("models_flagged", [])
    trends = mvr.tables["trend"]
    mock_sig = sum(t["significant"] for t in trends if t["kind"] == "mock")
    real_sig = sum(t["significant"] for t in trends if t["kind"] == "real")
    out.append(
        f"Batch-size trend: the slope of per-step Gini against log2 B spans "
        f"{_range([t['slope'] for t in trends], 3)} per doubling of B; it is significant (95% bootstrap "
        f"interval excluding 0) for {mock_sig} of {sum(t['kind'] == 'mock' for t in trends)} mock runs and "
        f"{real_sig} of {sum(t['kind'] == 'real' for t in trends)} real-text runs, so "
        f"{len(fabricated)} model(s) show a trend only under mock tokens "
        f"({', '.join(family_of(m) for m in fabricated) or 'none'}). The paper finds a mock trend that "
        "vanishes under real text; the zoo's small negative slopes appear under every condition: steps of "
        "more sequences hold more tokens, and sampling noise in the per-step counts shrinks."
    )
    agree = [
        (family_of(r["model"]), r.get("band"), PAPER_BAND[family_of(r["model"])])
        for r in bands_v.summary
        if family_of(r.get("model", "")) in PAPER_BAND
    ]
    same = [f for f, got, paper in agree if got == paper]
    groups: dict = {}
    for r in bands_v.summary:
        groups.setdefault(r.get("data_group"), []).append(family_of(r["model"]))
    out.append(
        f"Bands (paper thresholds: concentrated when Gini >= 0.24 on every real condition, resilient when "
        f"<= 0.15 on prose; at B={batch}): the zoo puts "
        + ", ".join(f"{f} in '{got}'" for f, got, _ in agree)
        + f". The paper: {', '.join(f'{f} {p}' for f, _, p in agree)}; {len(same)} of {len(agree)} agree. "
        "The grouping derived from the data (largest gap in mean real-text Gini) splits "
        + " | ".join(", ".join(v) for _, v in sorted(groups.items(), key=lambda kv: str(kv[0])))
        + ". Zoo models are 64 wide with 4-7 layers, trained for minutes on 1.5M tokens: a family's band "
        "here says what its routing design does at toy scale, not what the large checkpoint does."
    )
    return out


BAND_COLS = [
    "model",
    "band",
    "certainty",
    "judged_on",
    "judged_gini",
    "judged_lo",
    "judged_hi",
    "real_min",
    "real_max",
    "real_mean",
    "data_group",
]


def _family_rows(mvr, bands_v, batch: int) -> tuple[list, list, list]:
    """The ratio (mock-uniform at B = 1, batch, 32), trend and band rows, each model named by its family."""
    ratio = [r for r in mvr.tables["ratio"] if r["mock"] == "mock-uniform" and r["batch"] in (1, batch, 32)]
    return tuple(
        [r | {"model": family_of(r["model"])} for r in rows] for rows in (ratio, mvr.tables["trend"], bands_v.summary)
    )


def write_page(path: Path, runs, seq_len: int, sequences: int, elapsed: float) -> None:
    from dodoco.findings import FindingsOptions, judge
    from dodoco.provenance import versions

    f = judge(runs, FindingsOptions(batch=BATCHES))
    batch = f.options.ref_batch
    matrix = gini_matrix(f, batch)
    mvr, bands_v = f.verdicts["mock_vs_real"], f.verdicts["bands"]
    v = versions("torch", "transformers")
    cols = ["model", *CONDITIONS, "real mean", "real mixed"]
    ratio_rows, trend_rows, band_rows = _family_rows(mvr, bands_v, batch)
    text = f"""# Zoo results: learned routing of the five zoo models

Generated by `python scripts/zoo_results.py` ({time.strftime("%Y-%m-%d")}; {elapsed:.0f} s of CPU model time; dodoco
{v["dodoco"]}, torch {v["torch"]}, transformers {v["transformers"]}). Each zoo model (docs/zoo.md)
was observed on {sequences} sequences of {seq_len} tokens per condition; real-text conditions read only
the held-out split. Steps of B = {", ".join(map(str, BATCHES))} sequences; Gini is the per-step
model-level value (mean over MoE layers), averaged over steps. These are small models trained on
1.5M tokens, not the paper's checkpoints.

## What the numbers say

{chr(10).join("- " + s for s in _statements(matrix, mvr, bands_v, batch))}

## DODOCO's verdicts on these runs (`dodoco findings`)

{chr(10).join("- " + s for s in f.headlines)}

## Gini matrix (B = {batch})

{md_table(matrix, cols)}

"real mean": the mean of the four real-text columns. "real mixed": steps of B sequences drawn (seeded)
from all four real-text runs together.

## Mock / real Gini ratio (mock-uniform against each real condition)

{md_table(ratio_rows, ["model", "real", "batch", "gini_mock", "gini_real", "ratio", "ratio_lo", "ratio_hi"])}

Overall mock-vs-real verdict: **{mvr.verdict}** (ratios at B={batch} from {fmt(mvr.numbers["ratio_min"], 2)}
to {fmt(mvr.numbers["ratio_max"], 2)} over all mock x real pairs).

## Batch-size slopes (per-step Gini against log2 B, 95% bootstrap interval)

{md_table(trend_rows, ["model", "condition", "kind", "slope", "slope_lo", "slope_hi", "significant"])}

## Bands (B = {batch})

{md_table(band_rows, BAND_COLS)}

Band verdict: **{bands_v.verdict}**. {" ".join(bands_v.notes)}
"""
    from dodoco.store.atomic import write_bytes

    write_bytes(path, text.encode("utf-8"))
    print(f"wrote {path}")


def zoo_table() -> str:
    """The markdown table of the shipped zoo, from its model cards (docs/zoo.md embeds it)."""
    import json

    from dodoco.models.tiny import FAMILIES
    from dodoco.models.zoo import zoo_root
    from dodoco.training.card import layer_pattern

    head = (
        "| model | mixer | keeps the routing shape of | E | K | shared | layers | expert width | params | MB | "
        "balancing | held-out loss / ppl | GPU tokens/s | experts |"
    )
    lines = [head, "|" + "---|" * 14]
    for family, spec in FAMILIES.items():
        cfg = json.loads((zoo_root() / family / "config.json").read_text())
        rec, res = cfg["dodoco_zoo"], cfg["dodoco_zoo"]["results"]
        mb = (zoo_root() / family / "model.safetensors").stat().st_size / 1e6
        lines.append(
            f"| `zoo:{family}` | {spec.mixer} | {spec.real_model} | {spec.E} | {spec.K} | "
            f"{spec.shared_experts} | {layer_pattern(cfg)} | {cfg.get('moe_intermediate_size')} | "
            f"{rec['parameters'] / 1e6:.2f}M | {mb:.2f} | {rec['balance']['method']} | "
            f"{res['heldout_loss']:.3f} / {res['heldout_ppl']:.1f} | {res['train_tokens_per_s']:,.0f} | "
            f"{res['experts_implementation']} |"
        )
    return "\n".join(lines)


def write_zoo_table(path: Path) -> None:
    """Replace the table between the zoo-table markers of docs/zoo.md with the shipped cards' numbers."""
    text = path.read_text()
    start, end = "<!-- zoo-table: scripts/zoo_results.py writes it from the model cards -->", "<!-- /zoo-table -->"
    a, b = text.index(start) + len(start), text.index(end)
    path.write_text(text[:a] + "\n" + zoo_table() + "\n" + text[b:])
    print(f"wrote the zoo table of {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default=str(REPO / "runs" / "zoo-results"), help="run directories (reused)")
    p.add_argument("--out", default=str(REPO / "docs" / "zoo-results.md"))
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--sequences", type=int, default=128)
    p.add_argument("--table-only", action="store_true", help="only rewrite docs/zoo.md's table from the cards")
    args = p.parse_args(argv)
    write_zoo_table(REPO / "docs" / "zoo.md")
    if args.table_only:
        return 0
    runs = observe_all(Path(args.runs), args.seq_len, args.sequences)
    model_s = sum((r.manifest.details.get("throughput") or {}).get("seconds") or 0 for r in runs)
    write_page(Path(args.out), runs, args.seq_len, args.sequences, model_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
