"""Run directories: one per model x condition x sequence length (see docs/run-format.md)."""

from dodoco.store.manifest import ConditionKind, Granularity, Manifest, Origin
from dodoco.store.run import Run, find_runs, open_run, run_dir_name
from dodoco.store.validate import validate_run
from dodoco.store.writer import RunWriter

__all__ = [
    "ConditionKind",
    "Granularity",
    "Manifest",
    "Origin",
    "Run",
    "RunWriter",
    "find_runs",
    "open_run",
    "run_dir_name",
    "validate_run",
]
