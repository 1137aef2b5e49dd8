"""Fixtures for the importers: engine-format dumps written by scripts/make_ingest_fixtures.py."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_ingest_fixtures.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_ingest_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_ingest_fixtures"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fx():
    """The fixture script as a module (writers, route, counts_of, constants)."""
    return _load_script()


@pytest.fixture(scope="session")
def dumps(fx, tmp_path_factory):
    """name -> truth dict (files, counts, layer_ids, excluded, tokens, E, K) of every fixture writer."""
    root = tmp_path_factory.mktemp("dumps")
    out = {}
    for name, writer in fx.WRITERS.items():
        folder = root / name
        folder.mkdir()
        out[name] = writer(folder)
    return out


def import_to(fmt, paths, out, **options) -> dict:
    """import_dump of ``paths`` in format ``fmt`` into ``out`` (options as ImportConfig keys); the manifest."""
    from dodoco.ingest import ImportConfig, import_dump

    cfg = ImportConfig.from_dict(dict(format=fmt, paths=[str(p) for p in paths], out=str(out), **options))
    return import_dump(cfg)


@pytest.fixture
def imp():
    """The ``import_to`` function (tests import through it)."""
    return import_to


@pytest.fixture
def run_of(tmp_path):
    """run_of(format, paths, **options) -> (manifest, Run) of a fresh import into tmp_path."""
    from dodoco.store import open_run

    counter = iter(range(10**6))

    def run(fmt, paths, **kw):
        out = tmp_path / f"run{next(counter)}"
        man = import_to(fmt, paths, out, **kw)
        return man, open_run(out)

    return run


def as_array(x):
    return np.asarray(x)
