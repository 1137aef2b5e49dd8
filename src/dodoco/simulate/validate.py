"""Compatibility import for simulate/api.py only: import ``validation_rows`` from
``dodoco.simulate.holdout``, then delete this module."""

from dodoco.simulate.holdout import validation_rows

__all__ = ["validation_rows"]
