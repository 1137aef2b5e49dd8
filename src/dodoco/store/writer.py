"""Write run directories atomically and resumably.

While observing, finished chunks of sequences live in ``_parts/`` (each written atomically); a rerun
with the same identity skips them, and ``finalize`` concatenates them into the data files. The
manifest is written last, with the shape, dtype, size and sha256 of every data file.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError
from dodoco.store import atomic
from dodoco.store.manifest import MANIFEST, DataFile, Manifest, Status, read_raw, write_manifest, write_stub

__all__ = ["DATA_FILES", "RunWriter", "identity_diff"]

DATA_FILES = ("counts.npy", "seq_tokens.npy", "tokens.npy", "token_offsets.npy")


def identity_diff(a: dict, b: dict) -> str:
    """The first fields in which two identities differ, as text: "seed 0 vs 1, dtype ..."."""
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:3])


class RunWriter:
    """Writes one run directory; resumes a partial run of the same ``identity``.

    ``identity`` is what determines the run's data (docs/run-format.md): a directory holding another
    identity is refused unless ``overwrite``.
    """

    def __init__(self, path: Path, identity: dict, *, overwrite: bool = False):
        self.path = Path(path)
        self.identity = identity
        self.parts = self.path / "_parts"
        if (self.path / MANIFEST).exists():
            old = read_raw(self.path).get("identity", {})
            if old != identity and not overwrite:
                raise DodocoError(
                    f"output directory {self.path} holds a different run ({identity_diff(old, identity)}): "
                    "pass --overwrite to replace it, or choose another --out")
            if old != identity:
                shutil.rmtree(self.path)
        elif self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise DodocoError(f"output directory {self.path} is not empty and holds no DODOCO run: "
                                  "pass --overwrite or choose another --out")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / MANIFEST).exists():
            write_stub(self.path, identity)

    @property
    def complete(self) -> bool:
        return read_raw(self.path).get("status") == Status.COMPLETE.value

    def done_parts(self) -> set[int]:
        """Start indices of the chunks already written."""
        if not self.parts.exists():
            return set()
        return {int(p.stem.split("-")[1]) for p in self.parts.glob("part-*.npz")}

    def write_part(self, start: int, counts: np.ndarray, seq_tokens: np.ndarray,
                   topk: np.ndarray | None = None) -> None:
        """Store sequences ``[start, start + len(counts))`` atomically."""
        buf = io.BytesIO()
        arrays = {"counts": counts, "seq_tokens": seq_tokens}
        if topk is not None:
            arrays["topk"] = topk
        np.savez(buf, **arrays)
        atomic.write_bytes(self.parts / f"part-{start:09d}.npz", buf.getvalue())

    def finalize(self, manifest: Manifest) -> Manifest:
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
        return self.write_manifest(manifest, cleanup=True)

    def write_manifest(self, manifest: Manifest, *, cleanup: bool = False,
                       checksums: dict[str, str] | None = None) -> Manifest:
        """Complete ``manifest`` with this run's identity and the shape, dtype, size and sha256 of
        every data file present, and write it (status complete).

        ``checksums`` (name -> sha256 hex) gives digests already computed over exactly the bytes
        written (e.g. while streaming a large file), so those files are not read back."""
        files = {}
        for name in DATA_FILES:
            f = self.path / name
            if f.exists():
                arr = np.load(f, mmap_mode="r")
                digest = (checksums or {}).get(name) or atomic.sha256_file(f)
                files[name] = DataFile(sha256=digest, shape=tuple(arr.shape), dtype=str(arr.dtype),
                                       bytes=f.stat().st_size)
        full = manifest.replace(status=Status.COMPLETE, identity=self.identity, files=files)
        write_manifest(self.path, full)
        if cleanup and self.parts.exists():
            shutil.rmtree(self.parts)
        return full
