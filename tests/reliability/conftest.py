"""Fixtures of the fault-injection tests: engine dumps, a small observed run, snapshots of folders."""

import hashlib
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def engine_dumps(tmp_path_factory):
    """name -> truth dict of every writer of scripts/make_ingest_fixtures.py (valid engine dumps)."""
    spec = importlib.util.spec_from_file_location("make_ingest_fixtures", ROOT / "scripts" / "make_ingest_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_ingest_fixtures", module)
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("engine-dumps")
    out = {}
    for name, writer in module.WRITERS.items():
        (root / name).mkdir()
        out[name] = writer(root / name)
    return out


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (what 'nothing changed or lost' compares)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
