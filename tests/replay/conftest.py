"""Fixtures of the replay tests: synthetic run directories."""

import pytest
from synthetic_runs import make_run


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    make_run(d / "prose-L16", "prose", hot=4.0, seed=1)
    make_run(d / "mock-uniform-L16", "mock-uniform", seed=2)
    return d
