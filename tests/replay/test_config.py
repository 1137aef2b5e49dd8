"""Replay cases from run directories: conditions, controls, settings errors."""

import numpy as np
import pytest

from dodoco.errors import DodocoError
from dodoco.replay.config import ReplayConfig, build_cases


def test_build_cases_real_mock_balanced_skew(runs_dir):
    cfg = ReplayConfig(runs=(str(runs_dir),), condition="prose", skew=(1.5,), backend="gloo")
    cases, prov = build_cases(cfg, 2)
    kinds = [c.kind for c in cases]
    assert kinds.count("real") == kinds.count("mock") == kinds.count("balanced") == 8  # 4 steps x 2 layers
    assert kinds[-1] == "skew" and cases[-1].condition == "skew-1.5"
    reals = [c for c in cases if c.kind == "real"]
    for r, b in zip(reals, [c for c in cases if c.kind == "balanced"]):
        np.testing.assert_array_equal(r.splits.sum(1), b.splits.sum(1))  # same bytes per rank
        assert (r.step, r.layer) == (b.step, b.layer)
    assert all(c.splits.sum(1).tolist() == [32, 32] for c in reals)  # 16 tokens x K=2, B=1
    assert prov["mock"]["condition"] == "mock-uniform" and prov["real"]["E"] == 8


def test_condition_errors(runs_dir):
    with pytest.raises(DodocoError, match="did you mean 'prose'"):
        build_cases(ReplayConfig(runs=(str(runs_dir),), condition="prosa", backend="gloo"), 2)
    with pytest.raises(DodocoError, match=r"needs 16 sequences per step but run .* has 8"):
        build_cases(ReplayConfig(runs=(str(runs_dir),), condition="prose", batch=2, backend="gloo"), 8)


def test_config_validation():
    with pytest.raises(DodocoError, match="unknown dtype 'bf17'"):
        ReplayConfig(dtype="bf17")
    with pytest.raises(DodocoError, match="unknown backend 'mpi'"):
        ReplayConfig(backend="mpi")
    with pytest.raises(DodocoError, match=r"unknown replay settings \['colour'\]"):
        ReplayConfig.from_dict({"colour": 1})
    cfg = ReplayConfig(runs=("a",), layers=(1,), skew=(2.0,))
    assert ReplayConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.row_bytes == 4096
