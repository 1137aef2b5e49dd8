"""Versions recorded in every output DODOCO writes (manifests, model cards): one place for them."""

from __future__ import annotations

import importlib
import platform
import subprocess
from pathlib import Path

__all__ = ["VERSION", "git_hash", "versions"]

#: DODOCO's version (``dodoco.__version__``; pyproject.toml carries the same).
VERSION = "0.1.0"


def git_hash() -> str | None:
    """The commit of the DODOCO checkout this runs from, with "+dirty" when its code (src/, bench/ but its
    results and data, scripts/, pyproject.toml) differs from that commit: the code that ran is then not
    that commit. None outside a git checkout."""
    here = Path(__file__).parent
    code = [":(top)src", ":(top)bench", ":(top)scripts", ":(top)pyproject.toml"]
    code += [":(top,exclude)bench/results", ":(top,exclude)bench/data"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if not head.stdout.strip():
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *code],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions(*packages: str) -> dict:
    """dodoco's version and git hash, python's, and ``__version__`` of each named package."""
    out = {"dodoco": VERSION, "git": git_hash()}
    for name in packages:
        out[name] = importlib.import_module(name).__version__
    out["python"] = platform.python_version()
    return out
