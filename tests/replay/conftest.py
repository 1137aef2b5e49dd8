"""Fixtures of the replay tests: synthetic run directories."""

import pytest
from synthetic_runs import make_run


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    make_run(d / "prose-L16", "prose", hot=4.0, seed=1)
    make_run(d / "mock-uniform-L16", "mock-uniform", seed=2)
    return d


@pytest.fixture(scope="session")
def traced_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("traced")
    make_run(d / "code-L16", "code", hot=3.0, seed=3, traces=True)
    return d
