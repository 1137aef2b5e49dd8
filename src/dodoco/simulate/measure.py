"""Compatibility imports for simulate/api.py and simulate/gemm.py only: import ``read_json`` from
``dodoco.jsonfile`` and ``load_groups`` from ``dodoco.simulate.samples``, then delete this module."""

from dodoco.jsonfile import read_json
from dodoco.simulate.samples import load_groups

__all__ = ["load_groups", "read_json"]
