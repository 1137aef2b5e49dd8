"""Simulate dispatch cost: the calibrated analytic model and the NeuSim-compatible export.

Submodules are imported on use (``import dodoco.simulate`` stays light):
``dodoco.simulate.neusim`` (NeuSim parameters from a trace, NeuSim's receiver-skew formula).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "neusim_export": "dodoco.simulate.neusim",
    "neusim_predicted_skew": "dodoco.simulate.neusim",
    "neusim_table": "dodoco.simulate.neusim",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dodoco.simulate' has no attribute '{name}'")
