"""Write run directories atomically and resumably, one writer at a time, never over foreign files.

While observing, finished chunks of sequences live in ``_parts/`` as ``part-<start>-<rows>-<sha>.npz``
(each written atomically, named by the sha256 of its bytes); a rerun with the same identity keeps
the intact ones and discards (and recomputes) damaged ones with a note. ``finalize`` proves the parts
cover every sequence exactly once, in order, before concatenating them into the data files. The
manifest is written last, with the shape, dtype, size and sha256 of every data file.

A directory is replaced (``overwrite``) only when it holds a DODOCO run of the writer's own origin
(observed or imported) and nothing else; only the run's own files (``store.own``: those its manifest
lists) are removed, and no link is followed (a ``_parts`` that is a link is refused). A folder that
holds files DODOCO did not write and no run is refused, with or without ``overwrite``.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np

from dodoco.errors import DataError, DodocoError
from dodoco.store import atomic
from dodoco.store.lock import RunLock, remove_stale_temps
from dodoco.store.manifest import (
    MANIFEST,
    SEAL,
    DataFile,
    Manifest,
    Origin,
    Status,
    read_manifest,
    read_raw,
    write_manifest,
    write_stub,
)
from dodoco.store.own import DATA_FILES, LOCK, PART, PARTS, RUN_FILES, foreign_entries, own_entries

__all__ = ["DATA_FILES", "RUN_FILES", "RunWriter", "foreign_entries", "identity_diff", "record_file"]


def identity_diff(a: dict, b: dict) -> str:
    """The first fields in which two identities differ, as text: "seed 0 vs 1, dtype ..."."""
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:3])


class RunWriter:
    """Writes one run directory; resumes a partial run of the same ``identity``.

    ``identity`` is what determines the run's data (docs/run-format.md); ``origin`` who writes it. The
    writer holds the directory's lock (``lock=False`` for the other ranks of a sharded observe, whose
    rank 0 holds it) until ``close``, ``finalize`` or ``write_manifest``. A directory holding another
    identity is refused unless ``overwrite``; a stub of an earlier start that wrote nothing is
    replaced; ``notes`` says what was cleaned up or discarded.
    """

    def __init__(self, path: Path, identity: dict, *, origin: Origin, overwrite: bool = False, lock: bool = True):
        self.path = Path(path)
        self.identity, self.origin = identity, Origin(origin)
        self.parts = self.path / PARTS
        self.notes: list[str] = []
        self.foreign: set[str] = set()
        self.lock = RunLock(self.path).acquire() if lock else None
        try:
            if self.lock:
                gone = remove_stale_temps(self.path)
                if gone:
                    self.notes.append(f"removed {len(gone)} temp file(s) of an interrupted write ({gone[0]}, ...)")
            self._claim(overwrite)
        except BaseException:
            self.close()
            raise

    def _claim(self, overwrite: bool) -> None:
        """Decide what to do with what the directory holds (see the class docstring), then mark it ours."""
        foreign = foreign_entries(self.path)
        self.foreign = set(foreign)  # never removed, never listed in the manifest: not DODOCO's
        if os.path.lexists(self.parts) and PARTS in foreign:
            raise DodocoError(
                f"{self.parts} is not DODOCO's (a link, or a folder holding other files): DODOCO "
                "never writes or deletes through it; move it away, or choose another output"
            )
        if not os.path.lexists(self.path / MANIFEST):
            if foreign:
                raise DodocoError(
                    f"{self.path} holds no DODOCO run ({', '.join(foreign[:3])}): "
                    "choose another output (--overwrite never removes other files)"
                )
            write_stub(self.path, self.identity, self.origin)
            return
        try:
            raw = read_raw(self.path)
        except DodocoError:
            raise DodocoError(
                f"{self.path / MANIFEST} is unreadable, so {self.path} cannot be resumed or replaced: "
                "remove the directory yourself, or choose another output"
            ) from None
        old = raw.get("identity") or {}
        if old == self.identity:
            return
        if raw.get("status") == Status.RUNNING.value and not self._has_data():
            self.notes.append(
                f"replaced the stub of an earlier start that wrote nothing ({identity_diff(old, self.identity)})"
            )
            write_stub(self.path, self.identity, self.origin)
            return
        self._refuse_unless_replaceable(raw, old, overwrite, foreign)
        self._remove_run()
        write_stub(self.path, self.identity, self.origin)

    def _has_data(self) -> bool:
        own = own_entries(self.path)
        return any(n in own for n in DATA_FILES) or (PARTS in own and any(self.parts.glob("part-*")))

    def _refuse_unless_replaceable(self, raw: dict, old: dict, overwrite: bool, foreign: list[str]) -> None:
        what = "a different run" if raw.get("status") == Status.COMPLETE.value else "an unfinished different run"
        if not overwrite:
            raise DodocoError(
                f"output directory {self.path} holds {what} ({identity_diff(old, self.identity)}): "
                "pass --overwrite to replace it, or choose another --out"
            )
        theirs = raw.get("origin")
        if theirs and theirs != self.origin.value:
            verb = "observe" if self.origin is Origin.OBSERVED else "import"
            raise DodocoError(
                f"{self.path} holds an {theirs} run: {verb} --overwrite replaces only "
                f"{self.origin.value} runs; remove it yourself, or choose another output"
            )
        if foreign:
            raise DodocoError(
                f"{self.path} also holds {', '.join(foreign[:3])}, which DODOCO did not write: "
                "--overwrite never removes them; move them away, or choose another output"
            )

    def _remove_run(self) -> None:
        """Remove the run's own files (store.own: those its manifest lists; never anything else, never
        through a link), the manifest last."""
        own = own_entries(self.path) - {LOCK}
        if PARTS in own:
            shutil.rmtree(self.parts)  # a real folder of part files (rmtree never follows links inside)
        for name in sorted(own - {PARTS, MANIFEST}) + [MANIFEST]:
            (self.path / name).unlink(missing_ok=True)

    def clear_data(self) -> None:
        """Remove the data files DODOCO wrote here before writing them again (a rerun of the same
        identity rewrites every file); files it did not write are kept."""
        own = own_entries(self.path)
        for name in DATA_FILES:
            if name in own:
                (self.path / name).unlink(missing_ok=True)

    def close(self) -> None:
        """Release the directory's lock (also done by ``finalize`` and ``write_manifest``)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    @property
    def complete(self) -> bool:
        return read_raw(self.path).get("status") == Status.COMPLETE.value

    def _intact_parts(self) -> dict[int, tuple[int, Path]]:
        """start -> (rows, file) of every part whose bytes match the sha256 in its name; damaged or
        unnamed parts are removed, each with a note (their sequences are computed again)."""
        out: dict[int, tuple[int, Path]] = {}
        own = PARTS in own_entries(self.path)
        for f in sorted(self.parts.glob("part-*")) if own else []:
            m = PART.match(f.name)
            if m and atomic.sha256_file(f)[:16] == m.group(3):
                out[int(m.group(1))] = (int(m.group(2)), f)
                continue
            f.unlink(missing_ok=True)
            self.notes.append(
                f"{f.name} is damaged (its bytes do not match its checksum): discarded, its sequences "
                "are computed again"
            )
        return out

    def done_parts(self) -> set[int]:
        """Start indices of the intact chunks already written (damaged ones discarded: see ``notes``)."""
        return set(self._intact_parts())

    def write_part(
        self, start: int, counts: np.ndarray, seq_tokens: np.ndarray, topk: np.ndarray | None = None
    ) -> None:
        """Store sequences ``[start, start + len(counts))`` atomically, named by the sha256 of the bytes."""
        buf = io.BytesIO()
        arrays = {"counts": counts, "seq_tokens": seq_tokens}
        if topk is not None:
            arrays["topk"] = topk
        np.savez(buf, **arrays)
        data = buf.getvalue()
        digest = atomic.sha256_bytes(data)[:16]
        atomic.write_bytes(self.parts / f"part-{start:09d}-{len(counts)}-{digest}.npz", data)

    def finalize(self, manifest: Manifest) -> Manifest:
        """Concatenate the parts into the data files, checksum them, mark the manifest complete.

        Refuses (one line, nothing written) unless the intact parts cover sequences
        ``0 .. manifest.sequences - 1`` exactly once, in order, each holding the rows its name says."""
        parts = [self._load_part(start, rows, f) for start, (rows, f) in sorted(self._intact_parts().items())]
        _check_coverage(self.path, [(start, len(c)) for start, c, _, _ in parts], manifest.sequences)
        counts = np.concatenate([c for _, c, _, _ in parts]).astype(np.uint32)
        seq_tokens = np.concatenate([t for _, _, t, _ in parts]).astype(np.int64)
        atomic.save_npy(self.path / "counts.npy", counts)
        atomic.save_npy(self.path / "seq_tokens.npy", seq_tokens)
        if parts[0][3] is not None:
            atomic.save_npy(self.path / "tokens.npy", np.concatenate([k for _, _, _, k in parts]))
            atomic.save_npy(self.path / "token_offsets.npy", np.concatenate([[0], np.cumsum(seq_tokens)]))
        return self.write_manifest(manifest, cleanup=True)

    def _load_part(self, start: int, rows: int, f: Path):
        """(start, counts [n, L, E], seq_tokens [n], topk [T, L, K] or None) of one part, its arrays
        checked against each other and its name."""
        with np.load(f, allow_pickle=False) as z:
            counts, seq_tokens = z["counts"], z["seq_tokens"]
            topk = z["topk"] if "topk" in z.files else None
        if not len(counts) == len(seq_tokens) == rows or (topk is not None and len(topk) != int(seq_tokens.sum())):
            raise DodocoError(
                f"{f} holds {len(counts)} counts and {len(seq_tokens)} token totals for {rows} "
                f"sequences: remove it and rerun the same command to compute them again"
            )
        return start, counts, seq_tokens, topk

    def write_manifest(
        self, manifest: Manifest, *, cleanup: bool = False, checksums: dict[str, str] | None = None
    ) -> Manifest:
        """Complete ``manifest`` with this run's identity and the shape, dtype, size and sha256 of
        every data file present that was not foreign when the writer claimed the directory (a file
        of the user's is never adopted), and write it (status complete).

        ``checksums`` (name -> sha256 hex) gives digests already computed over exactly the bytes
        written (e.g. while streaming a large file), so those files are not read back."""
        files = {}
        own = own_entries(self.path)
        for name in DATA_FILES:
            f = self.path / name
            if f.is_file() and name not in self.foreign:  # written by DODOCO: before this writer, or by it
                arr = np.load(f, mmap_mode="r", allow_pickle=False)
                digest = (checksums or {}).get(name) or atomic.sha256_file(f)
                files[name] = DataFile(
                    sha256=digest, shape=tuple(arr.shape), dtype=str(arr.dtype), bytes=f.stat().st_size
                )
        full = manifest.replace(status=Status.COMPLETE, identity=self.identity, files=files)
        write_manifest(self.path, full)
        if cleanup and PARTS in own:
            shutil.rmtree(self.parts)
        self.close()
        return full


def _check_coverage(path: Path, parts: list[tuple[int, int]], S: int) -> None:
    """Parts ``[(start, rows)]`` sorted by start must tile ``[0, S)``: the first gap, overlap or
    excess named in one line."""
    expected = 0
    for start, rows in parts:
        if start != expected:
            what = (
                f"sequences {expected}..{start - 1} are missing"
                if start > expected
                else f"sequences {start}..{expected - 1} are in two parts"
            )
            raise DodocoError(f"run {path} is incomplete: {what}; rerun the same command to compute them")
        expected += rows
    if expected != S:
        what = f"sequences {expected}..{S - 1} are missing" if expected < S else f"{expected} rows for {S} sequences"
        raise DodocoError(f"run {path} is incomplete: {what}; rerun the same command to compute them")


def record_file(path, name: str, data: bytes, *, shape: tuple = (), dtype: str = "") -> Manifest:
    """Add file ``name`` (e.g. metrics.parquet) to the finished run at ``path``: written atomically
    and listed in its manifest with its sha256 and size, holding the run's lock; a sealed manifest
    stays sealed, one written before seals stays unsealed."""
    path = Path(path)
    with RunLock(path, wait=60.0):
        manifest = read_manifest(path)
        if name in DATA_FILES or name == MANIFEST:
            raise DataError(f"{name} is written only with its run, not added to {path} later")
        sealed = SEAL in read_raw(path)
        atomic.write_bytes(path / name, data)
        entry = DataFile(sha256=atomic.sha256_bytes(data), shape=tuple(shape), dtype=dtype, bytes=len(data))
        manifest = manifest.replace(files={**manifest.files, name: entry})
        write_manifest(path, manifest, sealed=sealed)
    return manifest
