"""The one JSON file reader: parsed JSON and the file's sha256, with one-line errors.

Each result format has one reader built on it (replay results: ``replay.results.read_results``;
calibrations: ``simulate.calibration.load_calibration``; GEMM tables: ``simulate.gemm``; report
attachments); writes go through ``store.atomic.write_json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dodoco.errors import DataError, DodocoError

__all__ = ["read_json"]


def read_json(path, what: str, fix: str) -> tuple[object, str]:
    """(parsed JSON, sha256 of the file) of ``path``; one-line errors naming ``what`` it should be and
    the ``fix`` when it is missing, a folder or not JSON."""
    from dodoco.paths import read_regular

    p = Path(path)
    if not p.exists() and not p.is_symlink():
        raise DodocoError(f"{what} {p} does not exist: {fix}")
    if p.is_dir():
        raise DodocoError(f"{what} {p} is a folder: {fix}")
    text = read_regular(p, what, DataError, limit=1 << 31)  # FIFOs and devices refused, never read
    try:
        body = text.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{what} {p} is not UTF-8 text (binary data?): {fix}") from None
    try:
        return json.loads(body), hashlib.sha256(text).hexdigest()
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{what} {p} is not JSON ({str(exc)[:120]}): {fix}") from None
