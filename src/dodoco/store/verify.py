"""Checksums verified on read: every data file a consumer loads matches its manifest entry.

Cheap by design: the size is compared first; the full sha256 is computed once per file per
process and cached by (path, size, mtime), so a report that opens a run ten times hashes it once.
"""

from __future__ import annotations

from pathlib import Path

from dodoco.errors import DataError
from dodoco.store.atomic import sha256_file
from dodoco.store.manifest import DataFile
from dodoco.paths import regular

__all__ = ["verify_file"]

_VERIFIED: dict[tuple[str, int, int], str] = {}


def verify_file(run_path, name: str, entry: DataFile | None) -> Path:
    """The path of data file ``name`` of run ``run_path`` after checking it against ``entry``.

    DataError naming the file when it is missing, not a regular file, not listed in the manifest, of
    another size or of another sha256 (a changed or damaged file is never computed from).
    """
    f = Path(run_path) / name
    fix = f"`dodoco validate {run_path}`; rerun observe/import with --overwrite to rebuild it"
    if entry is None:
        raise DataError(f"{f} is not listed in the run's manifest: {fix}")
    if not f.exists() and not f.is_symlink():
        raise DataError(f"run {run_path} is missing {name}: {fix}")
    st = regular(f, "data file", DataError)
    if entry.bytes is not None and st.st_size != entry.bytes:
        raise DataError(
            f"{f} has {st.st_size} bytes but its manifest says {entry.bytes} (file changed or truncated): {fix}"
        )
    key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
    digest = _VERIFIED.get(key) or sha256_file(f, "data file")
    if digest != entry.sha256:
        raise DataError(f"{f} does not match its checksum in the manifest (file changed or damaged): {fix}")
    _VERIFIED[key] = digest
    return f
