"""``dodoco calibrate``: this machine's dispatch and expert-compute calibration, with its host identity.

``api`` (``calibrate(CalibrateConfig) -> CalibrateResult``), ``config`` (settings and grids),
``dispatch`` (the dispatch grid per dispatcher, in torchrun), ``compute`` (the expert-compute grid on
GPU 0), ``parts`` (finished parts, resuming). docs/dispatch.md, "dodoco calibrate".
"""
