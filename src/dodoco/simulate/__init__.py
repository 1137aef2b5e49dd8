"""Simulate dispatch cost: the dispatch model calibrated per machine / N / dispatcher, whole-layer
prediction at larger EP, and exports for other simulators (NeuSim, traffic matrices, LLMServingSim).

Submodules are imported on use (``import dodoco.simulate`` stays light):

- ``measure`` (replay results -> samples with fit / select / validate roles), ``forms`` (candidate
  model forms), ``fit`` (fitting and the choice by held-out error), ``validate`` (error tables),
  ``calibration`` (calibrations as data), ``cluster`` (cluster TOML, presets, ``AlltoallTimer``),
  ``layer`` (whole MoE layer, expert compute from ``dodoco.compute``), ``api`` (``SimulateConfig``, ``simulate``);
- ``neusim`` (NeuSim's receiver-skew formula, measured and effective parameters),
  ``neusim_export``, ``traffic_export``, ``export_api`` (``ExportConfig``, ``export``).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "SimulateConfig": "dodoco.simulate.api",
    "simulate": "dodoco.simulate.api",
    "ExportConfig": "dodoco.simulate.export_api",
    "export": "dodoco.simulate.export_api",
    "neusim_entries": "dodoco.simulate.neusim_export",
    "neusim_predicted_skew": "dodoco.simulate.neusim",
    "neusim_table": "dodoco.simulate.neusim",
    "effective_params": "dodoco.simulate.neusim",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dodoco.simulate' has no attribute '{name}'")
