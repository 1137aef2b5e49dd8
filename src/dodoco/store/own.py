"""Which entries of a run directory DODOCO wrote: what ``--overwrite`` may remove, what ``validate``
calls stray, and what makes a folder foreign (refused as an output).

The manifest decides. A folder without ``manifest.json`` holds nothing of DODOCO's but its lock
and temp files of interrupted writes, so a user's own ``counts.npy`` there is foreign. Under a stub
(status ``running``) the run's own file names are DODOCO's (a start or a finalize was interrupted).
In a finished run only the files its manifest lists are, plus ``metrics.parquet`` in a run written
before manifests were sealed (which did not list it). ``_parts`` is DODOCO's only as a real folder
of part files; a symbolic link there is never followed, so it is foreign.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dodoco.errors import DodocoError
from dodoco.store.atomic import is_temp
from dodoco.store.manifest import MANIFEST, SEAL, Status, read_raw

__all__ = ["DATA_FILES", "LOCK", "PART", "PARTS", "RUN_FILES", "foreign_entries", "own_entries"]

LOCK = ".dodoco.lock"
PARTS = "_parts"
DATA_FILES = ("counts.npy", "seq_tokens.npy", "tokens.npy", "token_offsets.npy")
RUN_FILES = (MANIFEST, *DATA_FILES, "metrics.parquet")  # what a finished run directory may hold
PART = re.compile(r"^part-(\d{9})-(\d+)-([0-9a-f]{16})\.npz$")


def _own_parts(path: Path) -> bool:
    """True when ``path/_parts`` is a real folder (not a link) holding only part files and temp files."""
    parts = path / PARTS
    if parts.is_symlink() or not parts.is_dir():
        return False
    with os.scandir(parts) as it:
        return all(e.is_file(follow_symlinks=False) and (PART.match(e.name) or is_temp(e.name)) for e in it)


def _manifest(path: Path) -> dict | None:
    """The raw manifest of ``path``, or None when there is none or it cannot be read."""
    if not os.path.lexists(path / MANIFEST):
        return None
    try:
        return read_raw(path)
    except DodocoError:
        return None


def own_entries(path) -> set[str]:
    """Names in ``path`` that DODOCO wrote (see the module docstring); temp files of interrupted
    writes included."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return set()
    names = set(os.listdir(path))
    own = {LOCK} | {n for n in names if is_temp(n)}
    raw = _manifest(path)
    if raw is None:
        return own & names
    own.add(MANIFEST)
    if raw.get("status") == Status.COMPLETE.value:
        files = raw.get("files")
        own |= set(files) if isinstance(files, dict) else set()
        if SEAL not in raw:
            own.add("metrics.parquet")
    else:
        own |= set(RUN_FILES)
    if _own_parts(path):
        own.add(PARTS)
    return own & names


def foreign_entries(path) -> list[str]:
    """Names in ``path`` that DODOCO did not write (sorted); empty for a missing folder."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return []
    return sorted(set(os.listdir(path)) - own_entries(path))
