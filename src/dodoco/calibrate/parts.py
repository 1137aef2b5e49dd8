"""Finished parts of a calibration, kept so that a killed ``dodoco calibrate`` resumes where it stopped.

Each part (one dispatcher's grid at one EP degree, one expert shape's compute grid) is written
atomically (``store.atomic``) under the work folder once it has finished, with the part's name; a
rerun skips the parts it finds. ``identity.json`` beside them records what the parts were measured
with: the host (GPU, count, interconnect, driver, CUDA, NCCL, torch, dodoco version and commit) and
the settings of the grids. A rerun whose host or settings differ refuses to mix them, in one line
naming what changed and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["HOST_KEYS", "Parts"]

#: the host fields a part depends on (not the date, not the hostname: a restarted lease is the same machine)
HOST_KEYS = ("gpu", "gpu_count", "driver", "cuda", "nccl", "torch", "dodoco", "git")


def _topology_kind(host: dict) -> list:
    t = host.get("topology") or {}
    return [t.get("kind"), t.get("nvlinks")]


class Parts:
    """The work folder of one calibration: ``identity.json`` and one JSON file per finished part."""

    def __init__(self, folder, host: dict, settings: dict):
        self.folder = Path(folder)
        self.identity = {
            "host": {k: host.get(k) for k in HOST_KEYS} | {"topology": _topology_kind(host)},
            "settings": settings,
        }

    def open(self) -> list[str]:
        """Create the folder or check it is this host's and these settings'; -> names of finished parts."""
        from dodoco.store.atomic import json_safe, write_json

        idf = self.folder / "identity.json"
        if idf.is_file():
            try:
                old = json.loads(idf.read_text())
            except json.JSONDecodeError:
                old = {}
            self._same(json_safe(old), json_safe(self.identity))
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json(idf, json_safe(self.identity))
        return sorted(p.stem for p in self.folder.glob("*.json") if p.name != "identity.json")

    def _same(self, old: dict, new: dict) -> None:
        for what in ("host", "settings"):
            a, b = old.get(what) or {}, new.get(what) or {}
            diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            if diff:
                k = diff[0]
                raise DodocoError(
                    f"{self.folder} holds parts measured with another {what} ({k}: {a.get(k)!r} "
                    f"there, {b.get(k)!r} now): remove {self.folder} or give another --work to start "
                    "afresh"
                )

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def done(self, name: str) -> bool:
        return self.path(name).is_file()

    def save(self, name: str, obj) -> Path:
        """Write a finished part atomically (a killed run leaves no half part)."""
        from dodoco.store.atomic import json_safe, write_json

        write_json(self.path(name), json_safe(obj))
        return self.path(name)

    def load(self, name: str):
        return json.loads(self.path(name).read_text())
