"""``dodoco demo`` as a function: every zoo (or tiny) family x mock-uniform and four real-text
conditions on CPU, judged by ``dodoco.findings.judge``; ``DemoConfig`` -> ``run_demo`` -> ``DemoResult``.

Shape legend: S sequences, L MoE layers, E routed experts, B sequences per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from dodoco.config import Config
from dodoco.errors import DodocoError

__all__ = ["DEMO_CONDITIONS", "DemoConfig", "DemoResult", "demo_rows", "run_demo"]

DEMO_CONDITIONS = ("mock-uniform", "prose", "code", "math", "multilingual")
TABLE_BATCHES = (1, 8, 32)


@dataclass(frozen=True, kw_only=True)
class DemoConfig(Config):
    """out: folder of the runs (one subfolder per family); models: "zoo" (trained routers) or "tiny"
    (random routers); seq_len and sequences per condition; json: where the table goes."""

    out: str = "runs/demo"
    models: str = "zoo"
    seq_len: int = 256
    sequences: int = 64
    json: str | None = None

    def __post_init__(self):
        if self.models not in ("zoo", "tiny"):
            raise DodocoError(f"--models {self.models!r} must be zoo or tiny")
        for name in ("seq_len", "sequences"):
            if getattr(self, name) < 2:
                raise DodocoError(f"--{name.replace('_', '-')} {getattr(self, name)} must be at least 2")


@dataclass
class DemoResult:
    paths: list[Path]
    findings: object  # dodoco.findings.Findings
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def demo_rows(findings, batches=TABLE_BATCHES) -> list[dict]:
    """One row per run: per-step Gini (mean over steps) at each of ``batches`` and over all units."""
    from dodoco.metrics.imbalance import gini

    rows = []
    for run in findings.runs:
        t = findings.trends[findings.key(run)]
        row = {"model": run.model, "condition": run.condition}
        for b in batches:
            if b in t["batches"]:
                row[f"gini B={b}"] = float(t["means"][t["batches"].index(b)])
        row["gini all"] = float(gini(run.aggregate()).mean())
        rows.append(row)
    return rows


def run_demo(cfg: DemoConfig) -> DemoResult:
    """Observe every family on DEMO_CONDITIONS (replacing an older demo run), then judge the runs."""
    from dodoco.findings import FindingsOptions, judge
    from dodoco.models.tiny import FAMILIES
    from dodoco.observe.runner import observe

    started = time.perf_counter()
    paths = []
    for family in FAMILIES:
        paths += observe(
            f"{cfg.models}:{family}",
            list(DEMO_CONDITIONS),
            seq_len=cfg.seq_len,
            sequences=cfg.sequences,
            out=Path(cfg.out) / family,
            batch_size=8,
            overwrite=True,
        )  # the demo replaces an older demo run (e.g. other weights)
    findings = judge(paths, FindingsOptions())
    return DemoResult(paths, findings, demo_rows(findings), time.perf_counter() - started)
