"""Lint and format of the tree with ruff (``[tool.ruff]`` in pyproject.toml): part of the test suite, as
the layer contracts are (tests/test_layers.py)."""

import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
TREE = ["src", "tests", "bench", "scripts"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "ruff"
    assert exe.exists(), "ruff is missing: pip install -e '.[test]'"
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_passes():
    out = _ruff("check", "--output-format", "concise", *TREE)
    assert out.returncode == 0, f"ruff check:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"


def test_ruff_format_is_applied():
    out = _ruff("format", "--check", *TREE)
    assert out.returncode == 0, f"ruff format --check (run `ruff format {' '.join(TREE)}`):\n{out.stdout[-4000:]}"
