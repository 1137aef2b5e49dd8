"""Read run directories: one per model x condition x sequence length (see docs/run-format.md).

Layout of one run directory::

    manifest.json       typed Manifest (store.manifest): provenance, routing, condition, checksums
    counts.npy          [S, L, E] uint32: tokens of unit s routed to expert e in MoE layer l
    seq_tokens.npy      [S] int64: routed (non-padding) tokens per unit
    tokens.npy          [T, L, K] uint8/uint16 (optional): chosen experts per token and layer
    token_offsets.npy   [S+1] int64 (with tokens): token range of each unit
    metrics.parquet     tidy metrics table (written by analyze/observe)

A unit is a sequence (observed runs) or a forward pass (imported). A window-aggregate import holds
one row, which every analysis treats as one step of known tokens.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from dodoco.errors import DataError, DodocoError
from dodoco.store import check
from dodoco.store.manifest import MANIFEST, Manifest, read_manifest
from dodoco.store.verify import verify_file

#: (run path, digest of its manifest) of runs whose data passed the content checks in this process
_CHECKED: set[tuple[str, str, str]] = set()

__all__ = ["Run", "find_runs", "open_run", "run_dir_name", "run_dirs"]


def run_dir_name(condition: str, seq_len: int) -> str:
    """Directory name of a run inside an ``observe --out`` folder, e.g. ``prose-L512``."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', condition).strip('_')}-L{seq_len}"


def _manifest_field(path: str, doc: str) -> property:
    """A read-only attribute of a Run: the manifest's field at ``path`` (dotted)."""
    return property(lambda self: functools.reduce(getattr, path.split("."), self.manifest), doc=doc)


@dataclass(eq=False)
class Run:
    """A finished run directory: its typed manifest, counts (memory-mapped, verified) and traces."""

    path: Path
    manifest: Manifest = field(repr=False)

    model = _manifest_field("model.id", "The model id the manifest records.")
    condition = _manifest_field("condition.name", "The condition's name.")
    kind = _manifest_field(
        "condition.kind", "Mock or real text, as the manifest records it (never guessed from the name)."
    )
    seq_len = _manifest_field("seq_len", "Tokens per sequence.")
    granularity = _manifest_field("granularity", "Sequence, pass, token or window (a Granularity).")
    E = _manifest_field("routing.E", "Routed experts.")
    L = _manifest_field("routing.L", "MoE layers.")

    @property
    def S(self) -> int:
        """Units (sequences or passes; 1 for a window aggregate)."""
        return int(self.counts.shape[0])

    @property
    def K(self) -> int:
        """Experts per token; DodocoError with the fix when the run does not record it."""
        K = self.manifest.routing.K
        if K is None:
            raise DodocoError(f"run {self.path} does not record top-k K: re-import it with --top-k K")
        return K

    def _load(self, name: str) -> np.ndarray:
        f = verify_file(self.path, name, self.manifest.files.get(name))
        try:
            return np.load(f, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(
                f"{f} is unreadable ({str(exc)[:160]}): `dodoco validate {self.path}`; rerun with --overwrite"
            ) from None

    def _key(self, what: str) -> tuple[str, str, str]:
        """What pins a content check: the run's path and its manifest (which pins every file's sha256)."""
        text = json.dumps(self.manifest.to_dict(), sort_keys=True, default=str)
        return str(self.path.resolve()), what, hashlib.sha256(text.encode()).hexdigest()

    def _refuse(self, problems: list[str], what: str) -> None:
        """DataError at the first content problem (store.check), else remember the run as checked."""
        if problems:
            raise DataError(
                f"run {self.path}: {problems[0]}; `dodoco validate {self.path}` lists every problem, "
                "rerun observe/import with --overwrite to rebuild it"
            )
        _CHECKED.add(self._key(what))

    def _checked(self, what: str) -> bool:
        return self._key(what) in _CHECKED

    @cached_property
    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, seq_tokens) after their checksums and their content (store.check) are verified."""
        counts, seq_tokens = self._load("counts.npy"), self._load("seq_tokens.npy")
        if not self._checked("counts"):
            self._refuse(check.counts_problems(self.manifest, counts, seq_tokens), "counts")
        return counts, seq_tokens

    @property
    def counts(self) -> np.ndarray:
        """``[S, L, E]`` uint32, memory-mapped, checked against its checksum and its manifest on first use."""
        return self._data[0]

    @property
    def seq_tokens(self) -> np.ndarray:
        """``[S]`` int64 routed tokens per unit."""
        return self._data[1]

    @property
    def has_tokens(self) -> bool:
        return "tokens.npy" in self.manifest.files

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Token traces ``topk[T, L, K]`` and ``offsets[S+1]``."""
        if not self.has_tokens:
            raise DodocoError(f"run {self.path} has no token traces: observe with --traces")
        tokens, offsets = self._load("tokens.npy"), self._load("token_offsets.npy")
        if not self._checked("tokens"):
            self._refuse(check.tokens_problems(self.manifest, self.counts, self.seq_tokens, tokens, offsets), "tokens")
        return tokens, offsets

    def aggregate(self) -> np.ndarray:
        """All units summed: int64 ``[L, E]`` (summed in chunks, never in uint32)."""
        c = self.counts
        out = np.zeros(c.shape[1:], dtype=np.int64)
        for a in range(0, c.shape[0], 4096):
            out += c[a : a + 4096].sum(axis=0, dtype=np.int64)
        return out


def open_run(path) -> Run:
    """Open a finished run directory: its manifest read, its seal and fields cross-checked (store.check);
    the data are verified on first use. Error naming the directory if it is not one, is unfinished or
    is damaged."""
    path = Path(path)
    run = Run(path, read_manifest(path))
    problems = check.manifest_problems(run.manifest)
    if problems:
        raise DataError(
            f"run {path}: {problems[0]}; `dodoco validate {path}` lists every problem, rerun "
            "observe/import with --overwrite to rebuild it"
        )
    return run


def run_dirs(paths) -> list[Path]:
    """Run directories named directly, or found below the given folders (each folder's sorted by path);
    finished or not (``find_runs`` opens them)."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if (p / MANIFEST).exists():
            dirs.append(p)
        elif p.is_dir():
            found = sorted(m.parent for m in p.rglob(MANIFEST) if "_parts" not in m.parts)
            if not found:
                raise DodocoError(f"no run directory under {p}: run `dodoco observe --out {p}` first")
            dirs.extend(found)
        elif p.exists():
            raise DodocoError(f"run path '{p}' is a file, not a run directory: give the folder that holds {MANIFEST}")
        else:
            raise DodocoError(f"run path '{p}' does not exist")
    return dirs


def find_runs(paths) -> list[Run]:
    """Runs named directly, or found below the given folders (sorted by path)."""
    return [open_run(p) for p in run_dirs(paths)]
