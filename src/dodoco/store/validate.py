"""Check a run directory: schema, seal, required files, checksums of every listed file, dtypes and
shapes against the manifest, the content cross-checks of ``store.check``, and stray files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.store import atomic, check
from dodoco.store.manifest import MANIFEST, SEAL, Manifest, Status, read_raw, seal_of
from dodoco.store.own import PARTS, foreign_entries
from dodoco.paths import regular

__all__ = ["validate_run"]


def _file_problems(path: Path, m: Manifest) -> tuple[list[str], dict[str, np.ndarray]]:
    """(problems, name -> memory-mapped array of each sound .npy file) of every file the manifest lists."""
    problems, arrays = [], {}
    for name, meta in m.files.items():
        f = path / name
        if f.parent != path or name in ("", ".", ".."):
            continue  # not a file of the run (store.check names it): never read outside the run
        if not f.exists() and not f.is_symlink():
            problems.append(f"{name}: missing")
            continue
        try:
            size = regular(f, "data file").st_size
            if meta.bytes is not None and size != meta.bytes:
                problems.append(f"{name}: {size} bytes but the manifest says {meta.bytes} (file changed or truncated)")
                continue
            if atomic.sha256_file(f) != meta.sha256:
                problems.append(f"{name}: checksum mismatch (file changed or damaged)")
                continue
        except DodocoError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if not name.endswith(".npy"):
            continue
        try:
            arr = np.load(f, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            problems.append(f"{name}: unreadable ({str(exc)[:160]})")
            continue
        if tuple(arr.shape) != tuple(meta.shape) or str(arr.dtype) != meta.dtype:
            problems.append(
                f"{name}: {arr.dtype} {list(arr.shape)} but the manifest says {meta.dtype} {list(meta.shape)}"
            )
            continue
        arrays[name] = arr
    return problems, arrays


def _stray(path: Path) -> list[str]:
    """Files that do not belong in a finished run: temp files of interrupted writes, leftover parts,
    an interrupted import's scratch folder beside the run, anything DODOCO did not write."""
    temps = sorted(p.name for p in path.iterdir() if atomic.is_temp(p.name))
    problems = [f"{name}: stray file (a temp file of an interrupted write): remove it" for name in temps]
    problems += [
        f"{name}: stray (DODOCO did not write it): move it out of the run directory"
        for name in foreign_entries(path)
        if name != PARTS
    ]
    if (path / PARTS).exists() or (path / PARTS).is_symlink():
        problems.append("_parts: stray parts of an interrupted finalize: rerun the command that made the run")
    scratch = path.parent / f".{path.name}.dodoco-import"
    if scratch.exists():
        problems.append(f"{scratch}: stray scratch folder of an interrupted import: remove it")
    return problems


def _content_problems(m: Manifest, arrays: dict[str, np.ndarray]) -> list[str]:
    """store.check on the arrays that loaded soundly (a damaged file is reported once, above)."""
    if "counts.npy" not in arrays or "seq_tokens.npy" not in arrays:
        return []
    counts, seq_tokens = arrays["counts.npy"], arrays["seq_tokens.npy"]
    problems = check.counts_problems(m, counts, seq_tokens)
    if not problems and "tokens.npy" in arrays and "token_offsets.npy" in arrays:
        problems += check.tokens_problems(m, counts, seq_tokens, arrays["tokens.npy"], arrays["token_offsets.npy"])
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
    problems = []
    if SEAL in raw and raw[SEAL] != seal_of(raw):
        problems.append(f"{MANIFEST}: changed after DODOCO wrote it (its seal does not match its content)")
    problems += check.manifest_problems(m)
    files, arrays = _file_problems(path, m)
    return problems + files + _content_problems(m, arrays) + _stray(path)
