"""Write (atomic, resumable) and read run directories.

Layout of one run directory::

    manifest.json       provenance, routing shape, condition, checksums of every data file
    counts.npy          [S, L, E] uint32: tokens of sequence s routed to expert e in MoE layer l
    seq_tokens.npy      [S] int64: routed (non-padding) tokens per sequence
    tokens.npy          [T, L, K] uint8/uint16 (optional): chosen experts per token and layer
    token_offsets.npy   [S+1] int64 (with tokens): token range of each sequence
    metrics.parquet     tidy metrics table (written by analyze/observe)

While observing, finished chunks of sequences live in ``_parts/`` (each written atomically); a rerun
with the same spec skips them, and ``finalize`` concatenates them into the files above.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.store import atomic

SCHEMA = "dodoco.run/1"
MANIFEST = "manifest.json"
DATA_FILES = ("counts.npy", "seq_tokens.npy", "tokens.npy", "token_offsets.npy")


def run_dir_name(condition: str, seq_len: int) -> str:
    """Directory name of a run inside an ``observe --out`` folder, e.g. ``prose-L512``."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', condition).strip('_')}-L{seq_len}"


def _spec_diff(a: dict, b: dict) -> str:
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:3])


class RunWriter:
    """Writes one run directory; resumes a partial run of the same ``spec``.

    ``spec`` is what identifies the run (model, condition, seq_len, sequences, seed, dtype, traces):
    a directory holding another spec is refused unless ``overwrite``.
    """

    def __init__(self, path: Path, spec: dict, *, overwrite: bool = False):
        self.path = Path(path)
        self.spec = spec
        self.parts = self.path / "_parts"
        manifest_path = self.path / MANIFEST
        if manifest_path.exists():
            old = _read_manifest(self.path)
            if old.get("spec") != spec and not overwrite:
                raise DodocoError(
                    f"output directory {self.path} holds a different run ({_spec_diff(old.get('spec', {}), spec)}): "
                    "pass --overwrite to replace it, or choose another --out")
            if old.get("spec") != spec:
                shutil.rmtree(self.path)
        elif self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise DodocoError(f"output directory {self.path} is not empty and holds no DODOCO run: "
                                  "pass --overwrite or choose another --out")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if not manifest_path.exists():
            atomic.write_json(manifest_path, {"schema": SCHEMA, "status": "running", "spec": spec})

    @property
    def complete(self) -> bool:
        return _read_manifest(self.path).get("status") == "complete"

    def done_parts(self) -> set[int]:
        """Start indices of the chunks already written."""
        if not self.parts.exists():
            return set()
        return {int(p.stem.split("-")[1]) for p in self.parts.glob("part-*.npz")}

    def write_part(self, start: int, counts: np.ndarray, seq_tokens: np.ndarray,
                   topk: np.ndarray | None = None) -> None:
        """Store sequences ``[start, start + len(counts))`` atomically."""
        import io

        buf = io.BytesIO()
        arrays = {"counts": counts, "seq_tokens": seq_tokens}
        if topk is not None:
            arrays["topk"] = topk
        np.savez(buf, **arrays)
        atomic.write_bytes(self.parts / f"part-{start:09d}.npz", buf.getvalue())

    def finalize(self, manifest: dict) -> dict:
        """Concatenate the parts into the data files, checksum them, mark the manifest complete."""
        starts = sorted(self.done_parts())
        loaded = [np.load(self.parts / f"part-{s:09d}.npz") for s in starts]
        counts = np.concatenate([p["counts"] for p in loaded]).astype(np.uint32)
        seq_tokens = np.concatenate([p["seq_tokens"] for p in loaded]).astype(np.int64)
        atomic.save_npy(self.path / "counts.npy", counts)
        atomic.save_npy(self.path / "seq_tokens.npy", seq_tokens)
        if loaded and "topk" in loaded[0]:
            atomic.save_npy(self.path / "tokens.npy", np.concatenate([p["topk"] for p in loaded]))
            atomic.save_npy(self.path / "token_offsets.npy", np.concatenate([[0], np.cumsum(seq_tokens)]))
        return self.write_manifest(manifest, status="complete", cleanup=True)

    def write_manifest(self, manifest: dict, *, status: str = "complete", cleanup: bool = False,
                       checksums: dict[str, str] | None = None) -> dict:
        """Write the manifest with the shape, dtype and sha256 of every data file present.

        ``checksums`` (name -> sha256 hex) gives digests already computed over exactly the bytes
        written (e.g. while streaming a large file), so those files are not read back."""
        files = {}
        for name in DATA_FILES:
            f = self.path / name
            if f.exists():
                arr = np.load(f, mmap_mode="r")
                digest = (checksums or {}).get(name) or atomic.sha256_file(f)
                files[name] = {"sha256": digest, "shape": list(arr.shape), "dtype": str(arr.dtype)}
        full = {"schema": SCHEMA, "status": status, "spec": self.spec, **manifest, "files": files}
        atomic.write_json(self.path / MANIFEST, full)
        if cleanup and self.parts.exists():
            shutil.rmtree(self.parts)
        return full


def _read_manifest(path: Path) -> dict:
    import json

    f = Path(path) / MANIFEST
    try:
        return json.loads(f.read_text())
    except FileNotFoundError:
        raise DodocoError(f"{path} is not a DODOCO run directory (no {MANIFEST}): run `dodoco observe` "
                          "or `dodoco import` to make one") from None
    except json.JSONDecodeError as exc:
        raise DodocoError(f"{f} is corrupt ({exc.msg} at line {exc.lineno}): rerun observe with --overwrite") from None


@dataclass
class Run:
    """A finished run directory: manifest, counts (memory-mapped) and the optional token traces."""

    path: Path
    manifest: dict = field(repr=False)

    @property
    def model(self) -> str:
        return self.manifest["model"]["id"]

    @property
    def condition(self) -> str:
        return self.manifest["condition"]["name"]

    @property
    def seq_len(self) -> int:
        return int(self.manifest["seq_len"])

    @property
    def granularity(self) -> str:
        """``sequence`` (per-sequence counts), ``pass``/``token`` (imported), or ``window`` (aggregate only)."""
        return self.manifest.get("granularity", "sequence")

    @cached_property
    def counts(self) -> np.ndarray:
        """``[S, L, E]`` uint32, memory-mapped."""
        return _load(self.path, "counts.npy")

    @cached_property
    def seq_tokens(self) -> np.ndarray:
        return _load(self.path, "seq_tokens.npy")

    @property
    def has_tokens(self) -> bool:
        return (self.path / "tokens.npy").exists()

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Token traces ``topk[T, L, K]`` and ``offsets[S+1]``."""
        if not self.has_tokens:
            raise DodocoError(f"run {self.path} has no token traces: observe with --traces")
        return _load(self.path, "tokens.npy"), _load(self.path, "token_offsets.npy")

    def metrics(self):
        import pyarrow.parquet as pq

        f = self.path / "metrics.parquet"
        if not f.exists():
            raise DodocoError(f"run {self.path} has no metrics.parquet yet: run `dodoco analyze {self.path}`")
        return pq.read_table(f)


def _load(path: Path, name: str) -> np.ndarray:
    f = Path(path) / name
    try:
        return np.load(f, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DodocoError(f"run {path} is missing {name}: run `dodoco validate {path}`, then observe again") from None
    except ValueError as exc:
        raise DodocoError(f"{f} is corrupt or truncated ({exc}): `dodoco validate {path}`; observe again "
                          "with --overwrite") from None


def open_run(path) -> Run:
    """Open a finished run directory (error naming the directory if it is not one or is unfinished)."""
    path = Path(path)
    manifest = _read_manifest(path)
    if manifest.get("schema") != SCHEMA:
        raise DodocoError(f"{path}/{MANIFEST} has schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    if manifest.get("status") != "complete":
        raise DodocoError(f"run {path} is unfinished (status {manifest.get('status')!r}): rerun the same "
                          "`dodoco observe` command to resume it")
    return Run(path, manifest)


def find_runs(paths) -> list[Run]:
    """Runs named directly, or found below the given folders (sorted by path)."""
    runs: list[Run] = []
    for p in map(Path, paths):
        if (p / MANIFEST).exists():
            runs.append(open_run(p))
        elif p.is_dir():
            found = sorted(m.parent for m in p.rglob(MANIFEST) if "_parts" not in m.parts)
            if not found:
                raise DodocoError(f"no run directory under {p}: run `dodoco observe --out {p}` first")
            runs.extend(open_run(f) for f in found)
        else:
            raise DodocoError(f"run path '{p}' does not exist")
    return runs
