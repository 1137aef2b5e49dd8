"""Result files attached to a report (``dodoco report --attach``): what each is, and where its numbers
come from.

Kinds, recognised by their content, each read by its package's own reader:

- ``replay``: ``dodoco replay -o`` (schema ``dodoco.replay/2``, docs/replay.md), ``bench_dispatch``
  files (several replays under ``replays``) and the earlier ``dodoco.replay/1`` files
  (bench/results/replay-*.json), all read by ``dodoco.replay.results.load_results`` as /2 results
  (``replays``: one per replay, ``rows`` one per case and dispatcher); the file's own top level
  (validation, targets, notes) is kept in ``data``;
- ``simulate``: ``dodoco simulate -o`` (schema ``dodoco.simulate/1``: rows with model, run, cluster,
  dispatcher and calibration source, plus notes) or ``dodoco simulate --json`` (the rows alone).

Provenance: every attachment names the models and runs its traces come from, the machine or cluster,
and the calibration; a trace from a model that is not among the report's runs is said to be so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dodoco.errors import DodocoError

__all__ = ["Attachment", "load_attachments", "provenance_rows"]


@dataclass
class Attachment:
    """One attached file: its kind, parsed JSON, and the models / machine / calibration behind it."""

    path: Path
    kind: str  # "replay" or "simulate"
    data: object
    replays: list[dict] = field(default_factory=list)  # replay: dodoco.replay/2 results
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
        """The result rows: every replay's case rows, or the simulate rows."""
        if self.kind == "replay":
            return [r for rep in self.replays for r in rep["rows"]]
        return list(self.data["rows"]) if isinstance(self.data, dict) else list(self.data)

    @property
    def summary(self) -> list[dict]:
        """Replay: per replay, dispatcher and condition, the means over cases (as each replay wrote them),
        each saying where it was measured (``measured_on``)."""
        from dodoco.replay.results import measured_on

        return [
            {**s, "measured_on": s.get("measured_on") or measured_on(rep)}
            for rep in self.replays
            for s in rep.get("summary", [])
        ]


def _device(d: dict) -> str:
    from dodoco.replay.results import dry_run

    if dry_run(d):
        return f"{d.get('machine') or d.get('backend') or '?'}: CPU dry run, no GPU (not a measurement)"
    dev = d.get("device") or {}
    name = f"{dev.get('count', '?')} x {dev.get('name', '?')}" if dev else "device not recorded"
    return f"{d.get('machine') or d.get('backend') or '?'}: {name}" + (
        f", NCCL {dev['nccl']}" if dev.get("nccl") else ""
    )


def _kind(data) -> str | None:
    if isinstance(data, dict):
        schema = str(data.get("schema", ""))
        if schema.startswith("dodoco.simulate/") and "rows" in data:
            return "simulate"
        if schema.startswith("dodoco.replay/") or "replays" in data:
            return "replay"
    if isinstance(data, list) and data and isinstance(data[0], dict) and "dispatch_ms" in data[0]:
        return "simulate"
    return None


def _describe(a: Attachment) -> None:
    """Fill models, runs, machine, calibration and notes from the file's own rows and sources."""
    d = a.data
    if a.kind == "replay":
        srcs = [rep.get("source") or {} for rep in a.replays]
        a.models = list(
            dict.fromkeys(
                [str(r["model"]) for r in a.rows if r.get("model")]
                + [str(s["real"]["model"]) for s in srcs if (s.get("real") or {}).get("model")]
            )
        )
        a.runs = list(
            dict.fromkeys(
                [str(x) for s in srcs for x in (s.get("runs") or [])]
                + [str(s["real"]["path"]) for s in srcs if (s.get("real") or {}).get("path")]
            )
        )
        a.machine = _device(d if "device" in d else a.replays[0])
        a.notes = list(d.get("notes") or []) + [str(rep["note"]) for rep in a.replays if rep.get("note")]
        return
    rows = a.rows
    a.models = list(dict.fromkeys(str(r.get("model") or "not recorded") for r in rows))
    a.runs = list(dict.fromkeys(str(r["run"]) for r in rows if r.get("run")))
    clusters = list(dict.fromkeys(str(r["cluster"]) for r in rows if r.get("cluster")))
    a.machine = f"cluster {', '.join(clusters)} (predicted)" if clusters else "cluster not recorded"
    cal = (d.get("calibration") or {}).get("source") if isinstance(d, dict) else None
    a.calibration = cal or next((str(r["calibration"]) for r in rows if r.get("calibration")), None) or "not recorded"
    a.notes = list(d.get("notes") or []) if isinstance(d, dict) else []


def load_attachments(paths) -> list[Attachment]:
    """Read and describe every attached file (an ``Attachment`` passes as is); one-line DodocoError
    naming a file that is missing or not a result file, before any work."""
    from dodoco.replay.results import load_results
    from dodoco.jsonfile import read_json

    out = []
    for path in paths:
        if isinstance(path, Attachment):
            out.append(path)
            continue
        path = Path(path)
        if not path.is_file():
            raise DodocoError(f"--attach {path} does not exist: give a replay or simulate JSON file")
        data, _ = read_json(path, "attachment", "attach the output of dodoco replay -o or dodoco simulate -o/--json")
        kind = _kind(data)
        if kind is None:
            raise DodocoError(
                f"attachment {path} is neither a replay nor a simulate result file: attach the "
                "output of dodoco replay -o or dodoco simulate -o/--json"
            )
        a = Attachment(path, kind, data, replays=load_results([path]) if kind == "replay" else [])
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
            whose = (
                f"trace from another model: {', '.join(other)}, not one of this report's models "
                f"({', '.join(sorted(mine)) or 'none'})"
            )
        else:
            whose = "trace from this report's models"
        rows.append(
            {
                "file": a.name,
                "kind": a.kind,
                "trace models": ", ".join(a.models) or None,
                "provenance": whose,
                "machine": a.machine,
                "calibration": a.calibration or None,
                "trace runs": ", ".join(a.runs) or None,
                "notes": " | ".join(a.notes) or None,
            }
        )
    return rows
