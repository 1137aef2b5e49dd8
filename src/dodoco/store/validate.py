"""Check a run directory: schema, required files, shapes against the manifest, checksums."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.store import atomic
from dodoco.store.run import MANIFEST, SCHEMA, _read_manifest

REQUIRED = ("schema", "status", "model", "routing", "condition", "seq_len", "files")


def validate_run(path) -> list[str]:
    """Problems found in the run at ``path``, each naming the file; empty when the run is sound."""
    path = Path(path)
    try:
        manifest = _read_manifest(path)
    except DodocoError as exc:
        return [str(exc)]
    problems = [f"{MANIFEST}: missing key '{k}'" for k in REQUIRED if k not in manifest]
    if manifest.get("schema") != SCHEMA:
        problems.append(f"{MANIFEST}: schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    if manifest.get("status") != "complete":
        problems.append(f"{MANIFEST}: status {manifest.get('status')!r} (unfinished run; rerun observe to resume)")
    files = manifest.get("files", {})
    if "counts.npy" not in files:
        problems.append(f"{MANIFEST}: lists no counts.npy")
    for name, meta in files.items():
        f = path / name
        if not f.exists():
            problems.append(f"{name}: missing")
            continue
        digest = atomic.sha256_file(f)
        if digest != meta.get("sha256"):
            problems.append(f"{name}: checksum mismatch (file changed or truncated)")
            continue
        try:
            arr = np.load(f, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            problems.append(f"{name}: unreadable ({exc})")
            continue
        if list(arr.shape) != meta.get("shape"):
            problems.append(f"{name}: shape {list(arr.shape)} but manifest says {meta.get('shape')}")
    routing = manifest.get("routing", {})
    shape = files.get("counts.npy", {}).get("shape")
    if shape and routing and shape[1:] != [routing.get("L"), routing.get("E")]:
        problems.append(f"counts.npy: shape {shape} does not match routing L={routing.get('L')} E={routing.get('E')}")
    return problems
