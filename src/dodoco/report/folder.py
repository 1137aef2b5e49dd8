"""The report folder is owned: a report writes, replaces and removes only files it wrote.

``ReportFolder(out)`` reads the folder's manifest (``.dodoco-report.json``: the files the last
report wrote). Writing a name refuses, in one line, a file that is there and that no earlier report
wrote (the user's own file, or a report from before manifests). ``finish()`` removes the files the
earlier report wrote and this one did not (stale figures and tables of runs no longer reported),
then writes the manifest atomically. Files the report never wrote are never touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["MANIFEST", "ReportFolder"]

MANIFEST = ".dodoco-report.json"
SCHEMA = "dodoco.report-folder/1"


class ReportFolder:
    """One report build's writes into folder ``out`` (created when absent)."""

    def __init__(self, out):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise DodocoError(f"report output {self.out} is a file: give a folder with -o")
        self.earlier = self._read()
        self.written: list[str] = []

    def _read(self) -> set[str]:
        path = self.out / MANIFEST
        if not path.is_file():
            return set()
        try:
            data = json.loads(path.read_text())
            return {str(f) for f in data["files"] if "/" not in str(f) and not str(f).startswith(".")}
        except (OSError, ValueError, KeyError, TypeError):
            raise DodocoError(f"{path} is not a report manifest: remove it, or choose another folder with -o") from None

    def check(self, names) -> None:
        """Refuse (one line) before any write when a name to write is a file no report wrote."""
        for name in names:
            p = self.out / name
            if p.exists() and name not in self.earlier:
                raise DodocoError(
                    f"{p} was not written by a DODOCO report (not in {MANIFEST}): move it, or "
                    "choose another folder with -o"
                )

    def write(self, name: str, data: bytes) -> Path:
        from dodoco.store.atomic import write_bytes

        self.check([name])
        self.out.mkdir(parents=True, exist_ok=True)
        write_bytes(self.out / name, data)
        self.written.append(name)
        return self.out / name

    def finish(self) -> list[str]:
        """Remove the earlier report's files this one did not write; write the manifest. Returns the
        names removed."""
        from dodoco.store.atomic import write_bytes

        stale = sorted(self.earlier - set(self.written))
        for name in stale:
            (self.out / name).unlink(missing_ok=True)
        doc = {"schema": SCHEMA, "files": sorted(set(self.written))}
        write_bytes(self.out / MANIFEST, (json.dumps(doc, indent=1) + "\n").encode())
        return stale
