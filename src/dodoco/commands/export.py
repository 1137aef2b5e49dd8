"""dodoco export FORMAT RUN... -o FILE: hand a run's routing to another tool.

Formats:

- ``neusim``: NeuSim's ``expert_load_imbalance_factor`` and ``num_worst_case_experts`` derived from
  each run (``dodoco.simulate.neusim``; docs/neusim.md says how), at every EP degree, with the
  receiver skew NeuSim's formula predicts beside the skew measured on the trace; prefill steps,
  and decode steps where the run has token traces. One JSON file for all runs.

A run that holds one window aggregate (imported) is one step at every EP degree: its parameters
are those of the whole window.
"""

from __future__ import annotations

import numpy as np

from dodoco.commands import csv_ints

__all__ = ["neusim_entries", "register", "run"]

SCHEMA = "dodoco.neusim/1"
FORMATS = ("neusim",)


def register(sub) -> None:
    p = sub.add_parser("export", help="export runs for other tools (neusim)")
    p.add_argument("format", choices=FORMATS, help="what to export: neusim (MoELLMConfig imbalance fields)")
    p.add_argument("runs", nargs="+", help="run directories, or folders holding them")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="JSON file to write")
    p.add_argument("--ep", type=int, default=None,
                   help="EP degree the config is derived at (default: the largest that fits)")
    p.add_argument("--eps", type=csv_ints, default=None,
                   help="EP degrees listed under by_ep (default 4,8,16,32 and powers of two up to E)")
    p.add_argument("--batch", type=int, default=1, help="sequences per rank per step B (default 1)")
    p.add_argument("--regime", choices=("prefill", "decode", "both"), default="both",
                   help="prefill steps, decode steps (needs token traces), or both where traces exist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the printed table as JSON ('-' = stdout)")
    p.set_defaults(func=run)


def _provenance(run) -> dict:
    m = run.manifest
    return {"run": str(run.path), "source": m.origin.value, "model": m.to_dict()["model"],
            "condition": m.to_dict()["condition"], "seq_len": run.seq_len, "sequences": int(run.counts.shape[0]),
            "granularity": run.granularity.value, "versions": m.details.get("versions", {}),
            "created": m.details.get("created")}


def _top_k(run) -> int:
    return run.K


def _table(run, regime: str, eps: list[int], batch: int, seed: int):
    from dodoco.simulate.neusim import neusim_table

    E, K = int(run.counts.shape[2]), _top_k(run)
    labels = dict(model=run.model, condition=run.condition, seq_len=run.seq_len)
    if run.granularity == "window":  # one step at every EP: N*B copies of the window (ratios unchanged)
        window = np.asarray(run.counts).sum(axis=0, dtype=np.int64)
        copies = np.broadcast_to(window, (max(eps) * batch,) + window.shape)
        rows = neusim_table(copies, K, ep=eps, batch=(batch,), seed=seed, **labels).to_pylist()
        for r in rows:
            r["tokens_per_step"] /= r["ep"] * batch
            r["steps"] = 1
        import pyarrow as pa

        return pa.Table.from_pylist(rows)
    if regime == "prefill":
        return neusim_table(run.counts, K, ep=eps, batch=(batch,), seed=seed, **labels)
    from dodoco.ep.decode import DEFAULT_POSITIONS, decode_positions, decode_source

    topk, offsets = run.tokens()
    pos = decode_positions(np.diff(offsets), DEFAULT_POSITIONS)
    return neusim_table(None, K, ep=eps, batch=(batch,), seed=seed, regime="decode",
                        source=decode_source(topk, offsets, E, pos, seed), **labels)


def neusim_entries(runs, *, ep: int | None = None, eps=None, batch: int = 1, regime: str = "both",
                   seed: int = 0) -> list[dict]:
    """One NeuSim export per run and regime (``neusim_export`` plus labels and provenance)."""
    from dodoco.errors import DodocoError
    from dodoco.findings.runs import default_eps
    from dodoco.simulate.neusim import neusim_export

    if batch < 1:
        raise DodocoError(f"--batch must be >= 1, got {batch}")
    out = []
    for run in runs:
        E, K = int(run.counts.shape[2]), _top_k(run)
        grid = sorted(set(eps or default_eps(E)) | ({ep} if ep else set()))
        regimes = ["prefill"] if regime in ("prefill", "both") else []
        if regime in ("decode", "both") and run.has_tokens and run.granularity != "window":
            regimes.append("decode")
        if regime == "decode" and not regimes:
            raise DodocoError(f"run {run.path} has no token traces for --regime decode: observe with --traces "
                              "or use --regime prefill")
        for reg in regimes:
            table = _table(run, reg, grid, batch, seed)
            if table.num_rows == 0:
                raise DodocoError(f"run {run.path} has {int(run.counts.shape[0])} sequences: no EP degree in "
                                  f"{grid} fits a step of EP x {batch}; lower --batch or observe more sequences")
            entry = neusim_export(table, E, K, ep=ep, batch=batch)
            out.append({"model": run.model, "condition": run.condition, "seq_len": run.seq_len,
                        "regime": reg, **entry, "provenance": _provenance(run)})
    return out


def run(args) -> int:
    from pathlib import Path

    from dodoco.commands import emit
    from dodoco.store.atomic import write_json
    from dodoco.store.run import find_runs

    entries = neusim_entries(find_runs(args.runs), ep=args.ep, eps=args.eps, batch=args.batch,
                             regime=args.regime, seed=args.seed)
    from dodoco.report.tables import json_safe

    write_json(Path(args.out), json_safe({"schema": SCHEMA, "format": "neusim", "exports": entries}))
    rows = [{"model": e["model"], "condition": e["condition"], "regime": e["regime"],
             "ep": e["derived_at"]["ep"], "batch": e["derived_at"]["batch"],
             **e["config"], "predicted_skew": e["skew"]["predicted"], "measured_skew": e["skew"]["measured"]}
            for e in entries]
    if args.json != "-":
        print(f"wrote {args.out}")
    emit(rows, "NeuSim export (MoELLMConfig fields at the chosen EP)", json_path=args.json)
    return 0
