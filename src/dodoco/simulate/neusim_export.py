"""The NeuSim export of runs: measured and effective imbalance parameters per run and regime.

Per run and regime (prefill steps from counts; decode steps from token traces), ``neusim_table``
gives every EP degree's measured receiver skew and the parameters measured on the routing. At the
chosen EP (``--ep``; default the largest of the paper's EP degrees, ``defaults.EP``, below E whose
step fits the run, never E) the export holds:

- ``measured``: the per-expert factor (max/mean) and hot-expert count of the routing, and the skew
  NeuSim's formula predicts with them (it puts every hot expert on one device, so it overshoots);
- ``effective``: the (f, W) with which NeuSim's formula reproduces the receiver skew measured at
  that EP (``neusim.effective_params``), with the residual at every EP listed in ``by_ep``;
- ``config``: the effective pair, the two ``MoELLMConfig`` fields to paste (NeuSim uses one factor
  for both the hot expert's matmul and the all-to-all skew: the measured factor is the right one
  for the matmul, the effective one for the dispatch);
- ``derived_at``: EP, batch, regime, tokens per step T and what T is (``tokens_basis``): the tokens
  of one step (prefill), one token per sequence (decode), or the tokens of one forward pass when
  given (``tokens_per_pass``); where the steps' source-rank split is not observed (a window
  aggregate) and none is given, T is refused (unknown; NeuSim's skew does not depend on it).

Shape legend: S sequences, L MoE layers, E routed experts, K experts per token, N EP ranks, B
sequences per rank per step, W worst-case experts.
"""

from __future__ import annotations

import numpy as np

from dodoco import defaults
from dodoco.ep.steps import StepSource, run_source
from dodoco.errors import DodocoError
from dodoco.simulate.neusim import effective_params, neusim_predicted_skew, neusim_table

__all__ = ["SCHEMA", "default_ep", "neusim_entries", "neusim_export"]

SCHEMA = "dodoco.neusim/2"
UNSPLIT_T = (
    "refused: the steps' source-rank split is not observed (a window aggregate sums many forward passes "
    "and records neither how many nor the tokens of one); give --tokens-per-pass T (NeuSim's receiver skew "
    "does not depend on T)"
)
_BASIS = {
    "decode": "one decode step: one token of each of the EP x batch sequences",
    "prefill": "one prefill step: the tokens of the EP x batch sequences dispatched together",
}


def default_ep(E: int, source: StepSource, B: int) -> int:
    """The largest of the paper's EP degrees (``defaults.EP``) below E whose step of EP x B units the
    source holds (a window aggregate holds one at every EP)."""
    cands = [n for n in defaults.EP if n < E and source.n_steps(n * B)]
    if not cands:
        raise DodocoError(
            f"no EP degree of {list(defaults.EP)} is below E={E} with a step of EP x {B} in "
            f"{source.n_units} units: name one with --ep, lower --batch or record more sequences"
        )
    return max(cands)


def _tokens(row: dict, regime: str, observed: bool, tokens_per_pass) -> tuple:
    """(T, what T is): given with --tokens-per-pass, else the tokens of one step where the steps are the
    units each rank held (observed), else unknown (refused)."""
    if tokens_per_pass:
        return float(tokens_per_pass), "one forward pass (given with --tokens-per-pass)"
    return (row["tokens_per_step"], _BASIS[regime]) if observed else (None, UNSPLIT_T)


def neusim_export(table, E: int, K: int, ep: int, batch: int, *, observed: bool = True, tokens_per_pass=None) -> dict:
    """JSON-ready NeuSim entry from ``neusim_table``'s rows at (ep, batch): measured and effective
    parameters, the config to paste, and every EP's skews and residuals (``by_ep``)."""
    rows = [r for r in table.to_pylist() if r["batch"] == batch]
    at = [r for r in rows if r["ep"] == ep]
    if not at:
        raise DodocoError(
            f"EP={ep} at batch {batch} is not in the table (have {sorted({r['ep'] for r in rows})}): "
            "it needs EP x batch units and EP <= E"
        )
    r = at[0]
    measured = {x["ep"]: x["measured_skew"] for x in rows if x["ep"] > 1}
    eff = effective_params(E, K, measured, ep, w_hint=r["w_estimate"] if r["w_estimate"] == r["w_estimate"] else None)
    f, W = eff["expert_load_imbalance_factor"], eff["num_worst_case_experts"]
    for x in rows:
        x["effective_predicted_skew"] = neusim_predicted_skew(E, K, x["ep"], f, W) if x["ep"] <= E else None
        x["effective_residual_pct"] = eff["residual_pct"].get(x["ep"])
        x["measured_params_residual_pct"] = 100.0 * (x["predicted_over_measured"] - 1.0)
    T, basis = _tokens(r, r.get("regime", "prefill"), observed, tokens_per_pass)
    return {
        "num_routed_experts": int(E),
        "num_activated_routed_experts_per_token": int(K),
        "expert_parallelism_degree": int(ep),
        "config": {"expert_load_imbalance_factor": round(f, 6), "num_worst_case_experts": int(W)},
        "effective": {
            "expert_load_imbalance_factor": f,
            "num_worst_case_experts": int(W),
            "predicted_skew": neusim_predicted_skew(E, K, ep, f, W),
            "residual_pct": eff["residual_pct"][ep],
            "label": f"effective: NeuSim's formula reproduces the receiver skew measured at EP={ep}",
        },
        "measured": {
            "expert_load_imbalance_factor": r["expert_load_imbalance_factor"],
            "num_worst_case_experts": int(r["num_worst_case_experts"]),
            "predicted_skew": r["predicted_skew"],
            "residual_pct": 100.0 * (r["predicted_over_measured"] - 1),
            "label": "measured: per-expert max/mean and hot-expert count of the routing",
        },
        "derived_at": {
            "ep": int(ep),
            "batch": int(batch),
            "regime": r.get("regime"),
            "tokens_per_step": T,
            "tokens_basis": basis,
            "steps": r["steps"],
        },
        "skew": {"measured": r["measured_skew"], "measured_p95": r["measured_skew_p95"]},
        "by_ep": rows,
    }


def _provenance(run) -> dict:
    m = run.manifest
    return {
        "run": str(run.path),
        "origin": m.origin.value,
        "model": m.model.id,
        "revision": m.model.revision,
        "condition": m.condition.name,
        "kind": m.condition.kind.value,
        "seq_len": m.seq_len,
        "units": int(run.S),
        "granularity": m.granularity.value,
        "created": m.details.get("created"),
        "versions": m.details.get("versions", {}),
    }


def _source(run, regime: str, seed: int) -> StepSource:
    """The run's prefill steps (``run_source``) or decode steps (its token traces)."""
    if regime == "prefill":
        return run_source(run, seed)
    from dodoco.ep.decode import decode_positions, decode_source

    topk, offsets = run.tokens()
    pos = decode_positions(np.diff(offsets), defaults.DECODE_POSITIONS)
    return decode_source(topk, offsets, run.E, pos, seed)


def _regimes(run, regime: str) -> list[str]:
    out = ["prefill"] if regime in ("prefill", "both") else []
    if regime in ("decode", "both") and run.has_tokens:
        out.append("decode")
    if regime == "decode" and not out:
        raise DodocoError(
            f"run {run.path} has no token traces for --regime decode: observe with --traces or use --regime prefill"
        )
    return out


def neusim_entries(
    runs,
    *,
    ep: int | None = None,
    eps=None,
    batch: int = 1,
    regime: str = "both",
    seed: int = 0,
    tokens_per_pass: float | None = None,
) -> list[dict]:
    """One NeuSim export per run and regime (``neusim_export`` plus labels and provenance)."""
    if batch < 1:
        raise DodocoError(f"--batch must be >= 1, got {batch}")
    out = []
    for run in runs:
        at = int(ep) if ep else default_ep(run.E, run_source(run, seed), batch)
        grid = sorted(set(eps or defaults.default_eps(run.E)) | {at})
        for reg in _regimes(run, regime):
            source = _source(run, reg, seed)
            table = neusim_table(
                source,
                run.K,
                ep=grid,
                batch=(batch,),
                regime=reg,
                model=run.model,
                condition=run.condition,
                seq_len=run.seq_len,
            )
            if table.num_rows == 0:
                raise DodocoError(
                    f"run {run.path} has {run.S} units: no EP degree in {grid} fits a step of "
                    f"EP x {batch}; lower --batch or observe more sequences"
                )
            entry = neusim_export(
                table,
                run.E,
                run.K,
                at,
                batch,
                observed=source.source_split == "observed",
                tokens_per_pass=tokens_per_pass,
            )
            out.append(
                {
                    "model": run.model,
                    "condition": run.condition,
                    "seq_len": run.seq_len,
                    "regime": reg,
                    **entry,
                    "provenance": _provenance(run),
                }
            )
    return out
