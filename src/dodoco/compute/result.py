"""What ``dodoco compute`` returns, and the expert shape its settings name (shared by predict and measure).

Shape legend: R ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dodoco.errors import DodocoError

__all__ = ["SCHEMA", "ComputeResult", "config_shape"]

SCHEMA = "dodoco.compute-result/1"


@dataclass
class ComputeResult:
    title: str
    rows: list
    columns: list
    notes: list = field(default_factory=list)
    predicted_ms: list | None = None  # predict mode: one value per rank, in the order of the loads

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "title": self.title, "notes": self.notes, "rows": self.rows}


def config_shape(cfg, run=None):
    """(ExpertShape, label) of a ComputeConfig: --shape, --hidden/--width, else the run's own."""
    from dodoco.compute.shapes import resolve_shape, shape_of_run

    shape, label = resolve_shape(cfg.shape, cfg.hidden, cfg.width, cfg.act)
    if shape is None and run is not None:
        shape, label = shape_of_run(run)
    if shape is None:
        raise DodocoError(label or "give the expert shape: --shape NAME (dodoco ls lists them) or --hidden H --width I")
    return shape, label
