"""Check a run directory: schema, required files, shapes against the manifest, checksums."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.store import atomic
from dodoco.store.manifest import MANIFEST, Manifest, Status, read_raw
from dodoco.store.writer import foreign_entries

__all__ = ["validate_run"]


def _file_problems(path: Path, m: Manifest) -> list[str]:
    problems = []
    for name, meta in m.files.items():
        f = path / name
        if not f.exists():
            problems.append(f"{name}: missing")
            continue
        if meta.bytes is not None and f.stat().st_size != meta.bytes:
            problems.append(f"{name}: {f.stat().st_size} bytes but the manifest says {meta.bytes} (file changed "
                            "or truncated)")
            continue
        if atomic.sha256_file(f) != meta.sha256:
            problems.append(f"{name}: checksum mismatch (file changed or truncated)")
            continue
        try:
            arr = np.load(f, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            problems.append(f"{name}: unreadable ({exc})")
            continue
        if tuple(arr.shape) != meta.shape:
            problems.append(f"{name}: shape {list(arr.shape)} but manifest says {list(meta.shape)}")
    return problems


def _stray(path: Path) -> list[str]:
    """Files that do not belong in a finished run: temp files of interrupted writes, leftover parts,
    an interrupted import's scratch folder beside the run, anything else."""
    temps = sorted(p.name for p in path.iterdir() if atomic.is_temp(p.name))
    problems = [f"{name}: stray file (a temp file of an interrupted write): remove it" for name in temps]
    problems += [f"{name}: stray (no DODOCO run has it): move it out of the run directory"
                 for name in foreign_entries(path)]
    if (path / "_parts").exists():
        problems.append("_parts: stray parts of an interrupted finalize: rerun the command that made the run")
    scratch = path.parent / f".{path.name}.dodoco-import"
    if scratch.exists():
        problems.append(f"{scratch}: stray scratch folder of an interrupted import: remove it")
    return problems


def validate_run(path) -> list[str]:
    """Problems found in the run at ``path``, each naming the file; empty when the run is sound."""
    path = Path(path)
    try:
        raw = read_raw(path)
        if raw.get("status") != Status.COMPLETE.value:
            unfinished = f"{MANIFEST}: status {raw.get('status')!r} (unfinished run; rerun observe to resume)"
            return [unfinished] + _stray(path)
        m = Manifest.from_dict(raw, where=f"{path / MANIFEST}")
    except DodocoError as exc:
        return [str(exc)]
    problems = [] if "counts.npy" in m.files else [f"{MANIFEST}: lists no counts.npy"]
    problems += _file_problems(path, m) + _stray(path)
    shape = m.files["counts.npy"].shape if "counts.npy" in m.files else None
    if shape and tuple(shape[1:]) != (m.routing.L, m.routing.E):
        problems.append(f"counts.npy: shape {list(shape)} does not match routing L={m.routing.L} E={m.routing.E}")
    return problems
