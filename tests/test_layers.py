"""The layer contracts of docs/architecture.md, checked with import-linter (pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.exists(), "import-linter is missing: pip install -e '.[test]'"
    out = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    broken = out.stdout[out.stdout.find("Broken contracts") :] if "Broken contracts" in out.stdout else out.stdout
    assert out.returncode == 0, f"import contracts broken:\n{broken}{out.stderr}"


def test_every_package_is_a_regular_package():
    src = ROOT / "src" / "dodoco"
    missing = [
        str(d.relative_to(src))
        for d in src.rglob("*")
        if d.is_dir() and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert not missing, f"folders with Python modules but no __init__.py: {missing}"
