"""Atomic file writes: write a temp file in the same directory, fsync, then rename over the target."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dodoco.errors import DataError, DodocoError
from dodoco.paths import open_regular


_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what mkstemp(prefix=".NAME.", suffix=".tmp") makes


def is_temp(name: str) -> bool:
    """True for the name of a temp file of an atomic write (left behind only by a killed process)."""
    return bool(_TEMP.match(name))


def _target(path: Path) -> Path:
    """``path`` checked as a file to write: a folder there, or a file where its folder should be, is a
    one-line error naming it (never an IsADirectoryError traceback); missing parent folders are made."""
    path = Path(path)
    if path.is_dir():
        raise DodocoError(f"{path} is a folder, but a file is written there: give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DodocoError(f"{parent} is a file, but {path} needs it to be a folder: choose another path")
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with the file it concerns (a full disk or a read-only folder is then named in one line)."""
    if exc.filename is None:
        named = OSError(exc.errno, exc.strerror or str(exc), str(path))
        named.__cause__ = exc
        return named
    return exc


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename: a link at ``path`` is replaced,
    never written through); an OSError names ``path``."""
    with atomic_fd(path) as fd:
        write_all(fd, data)


def json_safe(obj):
    """NaN/inf -> None, numpy scalars and arrays -> Python, so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalar
        return json_safe(obj.item())
    return obj


def write_json(path: Path, obj) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=jsonable) + "\n").encode())


def save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    write_bytes(path, buf.getvalue())


def sha256_bytes(data) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, what: str = "file", error=DataError) -> str:
    """sha256 hex of a regular file's bytes (a FIFO, device or folder is refused with ``error``)."""
    digest = hashlib.sha256()
    with open_regular(path, what, error) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextmanager
def atomic_fd(path: Path):
    """Yield a writable fd of a temp file in ``path``'s directory; on a clean exit fsync it, make it
    0644 and rename it over ``path`` (os.replace); on an error remove it. For files written in pieces
    (large arrays streamed chunk by chunk) with the guarantees of ``write_bytes``."""
    path = _target(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _named(exc, path) from None
    try:
        yield fd
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from None
        raise


def write_all(fd: int, data) -> None:
    """os.write every byte of ``data`` (a buffer) to ``fd`` (os.write may write less than asked)."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        view = view[os.write(fd, view) :]
