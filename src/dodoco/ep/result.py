"""ScanResult: what an EP scan returns, as arrays, with the views its consumers need.

``values[k, s, l]`` holds statistic ``STATISTICS[s]`` over the steps of key ``keys[k]`` = (batch B,
EP degree N, placement, metric), at layer column l: l = 0 is the model level (layer -1: per step
the NaN-ignoring mean over layers, ``metrics.stats.layer_mean``), l = 1 + j is MoE layer j.
``steps[k]`` is how many steps the key rests on (1 for a window aggregate: flag such rows).

Views: ``rows(layer)`` one dict per (B, N, placement) with a column per metric and statistic,
sorted by N within B; ``series(metric, placement, batch)`` per N; ``value(...)`` one number;
``to_table()`` the tidy Parquet schema (``metrics.schema.SCHEMA``) with the skipped pairs and
``meta`` in its metadata (``skipped_reasons`` reads them back).

Shape legend: L MoE layers, N EP ranks, B units per rank per step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from dodoco.errors import DodocoError
from dodoco.metrics.schema import tidy_table
from dodoco.metrics.stats import STATISTICS

__all__ = ["ScanResult", "skipped_reasons"]

_SKIPPED_KEY, _META_KEY = b"ep_scan_skipped", b"ep_scan"
#: Column suffix of each statistic in ``rows`` (the mean is the bare metric name).
_SUFFIX = {"mean": "", "ci_lo": "_lo", "ci_hi": "_hi", "p50": "_p50", "p95": "_p95", "n_steps": "_n"}
_LABELS = ("model", "condition", "seq_len", "regime")
#: Statistics resting on this many steps or fewer have no interval in ``rows``.
FEW_STEPS = 2


@dataclass
class ScanResult:
    """An EP scan: keys [(batch, ep, placement, metric)], values float64 [keys, STATISTICS, L+1],
    steps int64 [keys]; labels (model, condition, seq_len, regime); skipped [dict(ep, batch,
    placement, reason)]; meta (seed, n_boot, part, fit_frac, source_split, options, ...)."""

    keys: list[tuple[int, int, str, str]]
    values: np.ndarray
    steps: np.ndarray
    labels: dict
    skipped: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.values.shape[-1]) - 1

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(k[3] for k in self.keys))

    def _col(self, layer: int) -> int:
        if not -1 <= layer < self.n_layers:
            raise DodocoError(f"layer {layer} is not in the scan: use -1 (model) or 0..{self.n_layers - 1}")
        return layer + 1

    def value(
        self, batch: int, ep: int, placement: str, metric: str, statistic: str = "mean", layer: int = -1
    ) -> float:
        """One number; NaN when the key was not scanned."""
        try:
            k = self.keys.index((int(batch), int(ep), placement, metric))
        except ValueError:
            return float("nan")
        return float(self.values[k, STATISTICS.index(statistic), self._col(layer)])

    def rows(self, layer: int = -1) -> list[dict]:
        """One dict per (B, N, placement), sorted by B, then N, then placement order: labels, batch,
        ep, placement, steps, part, source_split, and per metric its mean (the metric's name),
        ``_lo``/``_hi`` (bootstrap 95% interval; NaN where it rests on ``FEW_STEPS`` steps or fewer:
        no interval rather than a zero-width one), ``_p50``, ``_p95``, ``_n`` (non-NaN steps)."""
        col, out = self._col(layer), {}
        order = {p: i for i, p in enumerate(dict.fromkeys(k[2] for k in self.keys))}
        part, split = self.meta.get("part"), self.meta.get("source_split")
        for k, (B, N, name, metric) in enumerate(self.keys):
            row = out.setdefault(
                (B, N, order[name]),
                {
                    **{c: self.labels.get(c) for c in _LABELS},
                    "batch": B,
                    "ep": N,
                    "placement": name,
                    "steps": int(self.steps[k]),
                    "part": part,
                    "source_split": split,
                },
            )
            n = int(self.values[k, STATISTICS.index("n_steps"), col])
            for s, stat in enumerate(STATISTICS):
                v = float(self.values[k, s, col])
                if stat in ("ci_lo", "ci_hi") and n <= FEW_STEPS:
                    v = float("nan")
                row[metric + _SUFFIX[stat]] = int(v) if stat == "n_steps" else v
        return [out[key] for key in sorted(out)]

    def series(self, metric: str, placement: str, batch: int, layer: int = -1) -> dict[str, np.ndarray]:
        """Per scanned N (ascending) of one (metric, placement, B): {"ep", "mean", "lo", "hi",
        "p50", "p95", "steps"} arrays (empty when nothing was scanned)."""
        col = self._col(layer)
        ks = sorted(
            (key[1], k)
            for k, key in enumerate(self.keys)
            if key[0] == int(batch) and key[2] == placement and key[3] == metric
        )
        idx = [k for _, k in ks]
        v = self.values[idx][:, :, col] if idx else np.empty((0, len(STATISTICS)))
        get = {
            name: v[:, STATISTICS.index(stat)]
            for name, stat in (("mean", "mean"), ("lo", "ci_lo"), ("hi", "ci_hi"), ("p50", "p50"), ("p95", "p95"))
        }
        return {"ep": np.array([n for n, _ in ks], dtype=np.int64), **get, "steps": self.steps[idx].astype(np.int64)}

    def to_table(self) -> pa.Table:
        """The tidy table (SCHEMA): one row per key x statistic x layer (-1 first), labels constant;
        metadata ``ep_scan_skipped`` (the skipped pairs) and ``ep_scan`` (meta, steps per key)."""
        n_k, n_s, n_l = self.values.shape
        per = n_s * n_l
        cols = {
            "batch": np.repeat([k[0] for k in self.keys], per).astype(np.int64),
            "ep": np.repeat([k[1] for k in self.keys], per).astype(np.int64),
            "placement": np.repeat(np.array([k[2] for k in self.keys], dtype=object), per),
            "metric": np.repeat(np.array([k[3] for k in self.keys], dtype=object), per),
            "statistic": np.tile(np.repeat(np.array(STATISTICS, dtype=object), n_l), n_k),
            "layer": np.tile(np.arange(-1, n_l - 1, dtype=np.int64), n_k * n_s),
            "value": self.values.ravel(),
        }
        meta = {**self.meta, "steps": {f"{b},{e},{p}": int(s) for (b, e, p, _), s in zip(self.keys, self.steps)}}
        md = {_SKIPPED_KEY: json.dumps(self.skipped).encode(), _META_KEY: json.dumps(meta).encode()}
        return tidy_table(cols, self.labels, md)


def skipped_reasons(table: pa.Table) -> list[dict]:
    """What a scan skipped, from a ``to_table()`` table's metadata: dicts (ep, batch, placement,
    reason); placement None for a step too large for the units, batch None for a placement that
    cannot hold at that EP."""
    raw = (table.schema.metadata or {}).get(_SKIPPED_KEY)
    return json.loads(raw) if raw else []
