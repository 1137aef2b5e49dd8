"""``dodoco export`` as a function: ``ExportConfig`` -> ``export(cfg)`` writes the file, returns a summary.

Formats:

- ``neusim``: NeuSim's two ``MoELLMConfig`` imbalance fields per run and regime, measured and
  effective (``dodoco.simulate.neusim_export``), one JSON file (schema ``dodoco.neusim/2``);
- ``traffic``: per-step traffic matrices at one EP degree for any network simulator
  (``dodoco.simulate.traffic_export``): JSON (``dodoco.traffic/1``) or CSV, by the file's suffix;
- ``llmservingsim``: LLMServingSim's ``gate_stats.json`` (its CUSTOM expert-routing input), one run.

Shape legend: N EP ranks, B sequences per rank per step, H hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dodoco.config import pick
from dodoco import defaults
from dodoco.config import Config
from dodoco.errors import DodocoError, did_you_mean
from dodoco.registry import Registry

__all__ = ["EXPORTS", "FORMATS", "ExportConfig", "ExportResult", "export"]

#: Export formats: name -> the function (cfg, runs) -> ExportResult that writes it.
EXPORTS = Registry("export format")
for _name, _summary in (
    ("neusim", "NeuSim MoELLMConfig imbalance fields, measured and effective (JSON)"),
    ("traffic", "per-step traffic matrices, bytes[src][dst] per MoE layer (JSON or CSV)"),
    ("llmservingsim", "LLMServingSim gate_stats.json (CUSTOM expert routing), one run"),
):
    EXPORTS.register(_name, f"dodoco.simulate.export_api:_{_name}", _summary)
#: name -> summary of every export format (the command's help).
FORMATS = {e.name: e.summary for e in EXPORTS.entries()}


@dataclass(frozen=True, kw_only=True)
class ExportConfig(Config):
    """Settings of ``dodoco export`` (flags and TOML keys alike)."""

    format: str
    runs: tuple[str, ...]
    out: str
    ep: int | None = None
    eps: tuple[int, ...] | None = None
    batch: int = 1
    regime: str = "both"
    seed: int = 0
    tokens_per_pass: float | None = None
    hidden: int = defaults.HIDDEN
    dtype: str = defaults.DTYPE
    placement: str = defaults.PLACEMENT
    max_steps: int | None = None
    json: str | None = None
    gpu: str = "h100"
    kernel: str = "loop"  # NeuSim times each expert as its own matmul: the per-expert loop
    shape: str | None = None
    compute_calibration: str | None = None

    def __post_init__(self):
        EXPORTS.entry(self.format)
        if self.regime not in ("prefill", "decode", "both"):
            raise did_you_mean("--regime", self.regime, ["prefill", "decode", "both"])
        for key in ("batch", "hidden"):
            if getattr(self, key) < 1:
                raise DodocoError(f"--{key} {getattr(self, key)} must be >= 1")
        if self.ep is not None and self.ep < 2:
            raise DodocoError(f"--ep {self.ep}: an export is derived at an EP degree >= 2")
        if self.tokens_per_pass is not None and self.tokens_per_pass <= 0:
            raise DodocoError(f"--tokens-per-pass {self.tokens_per_pass} must be > 0")


@dataclass
class ExportResult:
    """What was written (path, document) and a table summarising it."""

    path: str
    doc: object
    title: str
    rows: list


def _compute_block(cfg, run, entry) -> dict:
    """NeuSim's worst-case-device compute fed the pair DODOCO exports for it (``neusim_compute``): the
    busiest device of the run's prefill steps at every EP of the entry, timed by the compute model."""
    import numpy as np

    from dodoco.compute.model import resolve_model
    from dodoco.compute.shapes import resolve_shape, shape_of_run
    from dodoco.ep.placements import build_placement
    from dodoco.ep.steps import run_source
    from dodoco.simulate.neusim_compute import busiest_device, compute_params

    shape, label = resolve_shape(cfg.shape) if cfg.shape else shape_of_run(run)
    if shape is None:
        return {"skipped": label}
    model = resolve_model(cfg.gpu, cfg.kernel, cfg.compute_calibration)
    src, B = run_source(run, cfg.seed), entry["derived_at"]["batch"]
    busiest = {}
    for N in sorted({int(x["ep"]) for x in entry["by_ep"]}):
        if N <= run.E and src.n_steps(N * B):
            steps = np.asarray(src.steps(N * B)[: cfg.max_steps or 8], dtype=np.int64)
            busiest[N] = busiest_device(steps, build_placement("contiguous", run.E, N), model, shape)
    out = compute_params(busiest, run.E, run.K, entry["derived_at"]["ep"], model, shape, cfg.gpu)
    return {**out, "shape": label}


def _neusim_compute(cfg, runs, entries, rows) -> None:
    """The compute pair of every prefill entry (``_compute_block``), and its columns in the table."""
    by_path = {str(r.path): r for r in runs}
    for e, row in zip(entries, rows):
        if e["regime"] != "prefill" or e["provenance"]["run"] not in by_path:
            continue
        e["compute"] = block = _compute_block(cfg, by_path[e["provenance"]["run"]], e)
        if "skipped" not in block:
            here = next(x for x in block["residuals"] if x["fitted_here"])
            row.update(
                compute_f=block["expert_load_imbalance_factor"],
                compute_W=block["num_worst_case_experts"],
                compute_ms_residual_pct=100 * here["ms_residual"],
            )


def _neusim(cfg, runs) -> ExportResult:
    from dodoco.simulate.neusim_export import SCHEMA, neusim_entries

    entries = neusim_entries(runs, **pick(cfg, "ep eps batch regime seed tokens_per_pass"))
    rows = [
        {
            "model": e["model"],
            "condition": e["condition"],
            "regime": e["regime"],
            "ep": e["derived_at"]["ep"],
            "batch": e["derived_at"]["batch"],
            "measured_skew": e["skew"]["measured"],
            "measured_f": e["measured"]["expert_load_imbalance_factor"],
            "measured_W": e["measured"]["num_worst_case_experts"],
            "measured_pred_skew": e["measured"]["predicted_skew"],
            "effective_f": e["effective"]["expert_load_imbalance_factor"],
            "effective_W": e["effective"]["num_worst_case_experts"],
            "effective_pred_skew": e["effective"]["predicted_skew"],
            "max_residual_other_ep_pct": max(
                (abs(x["effective_residual_pct"]) for x in e["by_ep"] if x["effective_residual_pct"] is not None),
                default=0.0,
            ),
        }
        for e in entries
    ]
    _neusim_compute(cfg, runs, entries, rows)
    return ExportResult(
        cfg.out,
        {"schema": SCHEMA, "format": "neusim", "exports": entries},
        "NeuSim export: measured and effective MoELLMConfig fields at the chosen EP",
        rows,
    )


def _traffic(cfg, runs) -> ExportResult:
    from dodoco.defaults import dtype_bytes
    from dodoco.ep.steps import run_source
    from dodoco.simulate.neusim_export import default_ep
    from dodoco.simulate.traffic_export import TRAFFIC_SCHEMA, traffic_csv, traffic_entry

    entries = []
    for r in runs:
        N = cfg.ep or default_ep(r.E, run_source(r, cfg.seed), cfg.batch)
        entries.append(
            traffic_entry(
                r,
                N,
                cfg.batch,
                row_bytes=cfg.hidden * dtype_bytes(cfg.dtype),
                placement=cfg.placement,
                seed=cfg.seed,
                max_steps=cfg.max_steps,
            )
        )
    doc = (
        traffic_csv(entries)
        if Path(cfg.out).suffix.lower() == ".csv"
        else {
            "schema": TRAFFIC_SCHEMA,
            "hidden": cfg.hidden,
            "dtype": cfg.dtype,
            "direction": "dispatch (combine: transpose)",
            "bytes": "per-expert copies: one H-wide row per (token, expert) assignment; the diagonal stays local",
            "exports": entries,
        }
    )
    rows = [
        {
            "model": e["model"],
            "condition": e["condition"],
            "ranks": e["ranks"],
            "batch": e["batch"],
            "placement": e["placement"],
            "part": e["part"],
            "matrices": len(e["matrices"]),
        }
        for e in entries
    ]
    return ExportResult(cfg.out, doc, "traffic matrices written (bytes per source and destination rank)", rows)


def _llmservingsim(cfg, runs) -> ExportResult:
    from dodoco.simulate.traffic_export import gate_stats

    if len(runs) != 1:
        raise DodocoError(
            f"llmservingsim takes one run (a gate_stats.json describes one model), got {len(runs)}: "
            "name one run directory"
        )
    doc = gate_stats(runs[0], cfg.seed)
    rows = [{"tokens": t, "mean_distinct_experts": d, "calls": n} for t, d, n in doc["curve"]]
    return ExportResult(
        cfg.out,
        doc,
        f"LLMServingSim gate_stats.json for {doc['model']} (E={doc['num_experts']}, K={doc['num_experts_per_tok']})",
        rows,
    )


def export(cfg: ExportConfig) -> ExportResult:
    """Export the runs in ``cfg.format`` to ``cfg.out`` (written atomically) -> summary."""
    from dodoco.store.atomic import json_safe
    from dodoco.store import find_runs
    from dodoco.store.atomic import write_bytes, write_json

    runs = find_runs(list(cfg.runs))
    res = EXPORTS.get(cfg.format)(cfg, runs)
    if isinstance(res.doc, str):
        write_bytes(Path(cfg.out), res.doc.encode())
    else:
        write_json(Path(cfg.out), json_safe(res.doc))
    return res
