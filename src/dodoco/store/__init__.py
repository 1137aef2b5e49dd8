"""Run directories: one per model x condition x sequence length (see docs/run-format.md)."""

from dodoco.store.run import Run, RunWriter, find_runs, open_run, run_dir_name
from dodoco.store.validate import validate_run

__all__ = ["Run", "RunWriter", "find_runs", "open_run", "run_dir_name", "validate_run"]
