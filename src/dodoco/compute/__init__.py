"""Expert compute: what routing imbalance costs the experts (docs/compute.md).

Pure numpy (no torch): ``features`` (a rank's loads -> what its expert time depends on), ``fit``
(forms, their fit, held-out errors), ``model`` (``ComputeModel``, calibrations per GPU and kernel,
``resolve_model``), ``grid`` (the calibration grid), ``cases`` (a run's busiest / median / lightest
ranks), ``shapes`` (the paper's expert shapes), ``validate`` (errors on held-out routing), ``api``
(``ComputeConfig``, ``compute``). On a GPU (torch): ``kernels`` (grouped_mm, loop), ``measure``,
``replay`` (``dodoco compute RUN``).
"""

from __future__ import annotations

from dodoco.registry import lazy_attributes

_LAZY = {
    "ComputeConfig": "dodoco.compute.api:ComputeConfig",
    "compute": "dodoco.compute.api:compute",
    "ComputeModel": "dodoco.compute.model:ComputeModel",
    "resolve_model": "dodoco.compute.model:resolve_model",
    "ExpertShape": "dodoco.compute.features:ExpertShape",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
