"""The one JSON file reader: parsed JSON and the file's sha256, with one-line errors.

Each result format has one reader built on it (replay results: ``replay.results.read_results``;
calibrations: ``simulate.calibration.load_calibration``; GEMM tables: ``simulate.gemm``; report
attachments); writes go through ``store.atomic.write_json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["read_json"]


def read_json(path, what: str, fix: str) -> tuple[object, str]:
    """(parsed JSON, sha256 of the file) of ``path``; one-line errors naming ``what`` it should be and
    the ``fix`` when it is missing, a folder or not JSON."""
    p = Path(path)
    try:
        text = p.read_bytes()
        return json.loads(text), hashlib.sha256(text).hexdigest()
    except FileNotFoundError:
        raise DodocoError(f"{what} {p} does not exist: {fix}") from None
    except IsADirectoryError:
        raise DodocoError(f"{what} {p} is a folder: {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DodocoError(f"{what} {p} is not JSON ({exc}): {fix}") from None
