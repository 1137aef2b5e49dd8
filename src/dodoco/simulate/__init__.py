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

from dodoco.registry import lazy_attributes

_LAZY = {
    "SimulateConfig": "dodoco.simulate.api:SimulateConfig",
    "simulate": "dodoco.simulate.api:simulate",
    "ExportConfig": "dodoco.simulate.export_api:ExportConfig",
    "export": "dodoco.simulate.export_api:export",
    "neusim_entries": "dodoco.simulate.neusim_export:neusim_entries",
    "neusim_predicted_skew": "dodoco.simulate.neusim:neusim_predicted_skew",
    "neusim_table": "dodoco.simulate.neusim:neusim_table",
    "effective_params": "dodoco.simulate.neusim:effective_params",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
