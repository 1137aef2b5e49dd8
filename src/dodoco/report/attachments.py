"""Result files attached to a report (``dodoco report --attach``): what each is, and where its numbers
come from.

Kinds, recognised by their content:

- ``replay/2``: ``dodoco replay -o`` (schema ``dodoco.replay/2``, docs/replay.md): ``rows``, one per
  case and dispatcher;
- ``replay/1``: the earlier replay files (``replays`` and ``validation``; bench/results/replay-*.json);
- ``simulate``: ``dodoco simulate -o`` (schema ``dodoco.simulate/1``: rows with model, run, cluster,
  dispatcher and calibration source, plus notes) or ``dodoco simulate --json`` (the rows alone).

Provenance: every attachment names the models and runs its traces come from, the machine or cluster,
and the calibration; a trace from a model that is not among the report's runs is said to be so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["Attachment", "load_attachments", "provenance_rows"]


@dataclass
class Attachment:
    """One attached file: its kind, parsed JSON, and the models / machine / calibration behind it."""

    path: Path
    kind: str  # "replay/2", "replay/1", "simulate"
    data: object
    models: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    machine: str = ""
    calibration: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def rows(self) -> list[dict]:
        """The result rows (replay/2, simulate); replay/1: the per-replay summary rows."""
        d = self.data
        if self.kind == "replay/1":
            return [dict(s) for rep in d["replays"] for s in rep.get("summary", [])]
        return list(d["rows"]) if isinstance(d, dict) else list(d)


def _device(d: dict) -> str:
    dev = d.get("device") or {}
    name = f"{dev.get('count', '?')} x {dev.get('name', '?')}" if dev else "device not recorded"
    return f"{d.get('machine') or d.get('backend') or '?'}: {name}" + (f", NCCL {dev['nccl']}" if dev.get("nccl") else "")


def _kind(data) -> str | None:
    if isinstance(data, dict):
        schema = str(data.get("schema", ""))
        if schema.startswith("dodoco.replay/") and "rows" in data:
            return "replay/2"
        if "replays" in data and "validation" in data:
            return "replay/1"
        if schema.startswith("dodoco.simulate/") and "rows" in data:
            return "simulate"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "dispatch_ms" in data[0]:
        return "simulate"
    return None


def _describe(a: Attachment) -> None:
    """Fill models, runs, machine, calibration and notes from the file's own fields."""
    d = a.data
    if a.kind == "replay/1":
        srcs = [rep.get("source", {}).get("real", {}) for rep in d["replays"]]
        a.models = list(dict.fromkeys(s.get("model") or "not recorded" for s in srcs))
        a.runs = list(dict.fromkeys(str(s.get("path", "")) for s in srcs if s.get("path")))
        a.machine, a.notes = _device(d), list(d.get("notes") or [])
    elif a.kind == "replay/2":
        a.models = list(dict.fromkeys(str(r.get("model")) for r in d["rows"] if r.get("model")))
        a.runs = [str(x) for x in (d.get("source") or {}).get("runs") or []]
        a.machine, a.notes = _device(d), [str(d["note"])] if d.get("note") else []
    else:
        rows = a.rows
        a.models = list(dict.fromkeys(str(r.get("model") or "not recorded") for r in rows))
        a.runs = list(dict.fromkeys(str(r["run"]) for r in rows if r.get("run")))
        clusters = list(dict.fromkeys(str(r["cluster"]) for r in rows if r.get("cluster")))
        a.machine = f"cluster {', '.join(clusters)} (predicted)" if clusters else "cluster not recorded"
        cal = (d.get("calibration") or {}).get("source") if isinstance(d, dict) else None
        cal = cal or next((str(r["calibration"]) for r in rows if r.get("calibration")), None)
        a.calibration = cal or "not recorded"
        a.notes = list(d.get("notes") or []) if isinstance(d, dict) else []


def load_attachments(paths) -> list[Attachment]:
    """Parse and describe every attached file; DodocoError naming a file that is not a result file."""
    out = []
    for path in map(Path, paths):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DodocoError(f"attachment {path} is not readable JSON ({exc}): attach replay or simulate "
                              "results") from None
        kind = _kind(data)
        if kind is None:
            raise DodocoError(f"attachment {path} is neither a replay nor a simulate result file: attach the "
                              "output of dodoco replay -o or dodoco simulate -o/--json")
        a = Attachment(path, kind, data)
        _describe(a)
        out.append(a)
    return out


def provenance_rows(attachments: list[Attachment], report_models) -> list[dict]:
    """One row per attachment: what it is, where its traces come from, and whether those are the
    report's own models ("trace from another model" otherwise)."""
    mine = set(report_models)
    rows = []
    for a in attachments:
        known = [m for m in a.models if m != "not recorded"]
        other = [m for m in known if m not in mine]
        if not known:
            whose = "the file does not name the model its trace comes from"
        elif other:
            whose = (f"trace from another model: {', '.join(other)}, not one of this report's models "
                     f"({', '.join(sorted(mine)) or 'none'})")
        else:
            whose = "trace from this report's models"
        rows.append({"file": a.name, "kind": a.kind, "trace models": ", ".join(a.models) or None,
                     "provenance": whose, "machine": a.machine, "calibration": a.calibration or None,
                     "trace runs": ", ".join(a.runs) or None, "notes": " | ".join(a.notes) or None})
    return rows
