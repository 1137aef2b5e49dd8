"""Replay measurements as model samples: every (case, phase) of replay results, schema 1 or 2.

Files are read by the one replay-result reader (``dodoco.replay.results.read_results``: schema 1
upgraded to 2, ``upgraded_from`` kept); this module turns their rows into samples.

A sample is one timed AlltoAll: its byte matrix b[N, N] (rank i sends b[i, j] bytes to rank j;
combine is the transposed dispatch traffic) and its median time. Samples are grouped by
(machine, N, dispatcher, phase); the model is fitted per group (``dodoco.simulate.fit``).

Every sample has a role, fixed here from the case alone, so the split is explicit and checkable:

- ``fit``: calibration traffic. Schema 2: the grid (kind ``grid``: per-rank sizes x receiver skews
  x hot-receiver / hot-pair patterns) and the uniform sweep. Schema 1 has no grid: the uniform
  sweep, the balanced controls and the synthetic skew controls.
- ``select`` / ``validate``: replays of routing (kind ``real`` or ``mock``), split in two halves by
  crc32 of (model, condition, step, layer) mod 2. ``select`` may choose between model forms;
  ``validate`` is never used by the fit nor the choice.
- ``control``: schema 2's balanced and skew controls of the routing cases (at the routing cases'
  sizes, so fitting on them would leak those sizes); reported, never fitted.

A CPU dry run (``--backend gloo``) is refused: its times are CPU process times.

Shape legend: N EP ranks.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["SCHEMAS", "Group", "Source", "load_groups", "routing_role"]

SCHEMAS = ("dodoco.replay/1", "dodoco.replay/2")
ALIASES = {"alltoall": "nccl"}  # schema 1 named the raw all_to_all_single "alltoall"
PHASES = ("dispatch", "combine")


@dataclass(frozen=True)
class Source:
    """One replay result file: path, sha256, schema, machine, device, creation time."""

    path: str
    sha256: str
    schema: str
    machine: str
    device: str
    created: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Group:
    """Samples of one (machine, N, dispatcher, phase): b[n, N, N] bytes, t[n] seconds, and per sample
    its case id, kind, pattern, role, model and condition."""

    machine: str
    device: str
    N: int
    dispatcher: str
    phase: str
    b: np.ndarray
    t: np.ndarray
    ids: tuple
    kind: tuple
    pattern: tuple
    role: tuple
    model: tuple
    condition: tuple

    @property
    def key(self) -> tuple:
        return (self.machine, self.N, self.dispatcher, self.phase)

    def where(self, mask) -> "Group":
        """The samples where mask[n] is true."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        pick = lambda seq: tuple(seq[i] for i in idx)  # noqa: E731
        return Group(
            self.machine,
            self.device,
            self.N,
            self.dispatcher,
            self.phase,
            self.b[idx],
            self.t[idx],
            pick(self.ids),
            pick(self.kind),
            pick(self.pattern),
            pick(self.role),
            pick(self.model),
            pick(self.condition),
        )

    def of_role(self, *roles: str) -> "Group":
        return self.where([r in roles for r in self.role])


def routing_role(model: str, condition: str, step, layer) -> str:
    """``select`` or ``validate`` for a routing case: crc32 of (model, condition, step, layer) mod 2."""
    key = f"{model}|{condition}|{step}|{layer}"
    return "select" if zlib.crc32(key.encode()) % 2 == 0 else "validate"


def _role(kind: str, schema: str, model: str, condition: str, step, layer) -> str:
    if kind in ("real", "mock"):
        return routing_role(model, condition, step, layer)
    if kind in ("grid", "sweep") or (schema == SCHEMAS[0] and kind in ("balanced", "skew")):
        return "fit"
    return "control"


def _refuse_dry_run(res: dict, path: Path, dry_run: bool = False) -> None:
    dev = res.get("device") or {}
    if res.get("mode") == "layer":
        raise DodocoError(
            f"{path} is a whole-layer replay (--layer): its combine waits for the busiest rank's "
            "experts; calibrate on a dispatch replay (dodoco replay without --layer, or dodoco calibrate)"
        )
    if (res.get("backend") == "gloo" or dev.get("type") == "cpu") and not dry_run:
        raise DodocoError(
            f"{path} is a --backend gloo replay (a CPU dry run): its times are CPU process times, "
            "not GPU dispatch times; calibrate on an NCCL replay measured on GPUs"
        )


def _machine(res: dict, top: dict) -> tuple[str, str]:
    dev = res.get("device") or top.get("device") or {}
    name = dev.get("name", "unknown device")
    machine = top.get("machine") or res.get("machine") or f"{name} x{dev.get('count', '?')}"
    return str(machine), str(name)


def _rows(res: dict) -> list[dict]:
    """Cases of one (upgraded) result, each with N, dispatcher, row_bytes filled from the result when
    absent, and its uniform sweep as cases of kind "sweep"."""
    out = []
    for c in res.get("rows") or []:
        out.append(
            {"N": res.get("N"), "dispatcher": res.get("dispatcher", "nccl"), "row_bytes": res.get("row_bytes"), **c}
        )
    for s in res.get("sweep") or []:  # uniform all_to_all_single: every rank sends x / N to every rank
        N = int(res["N"])
        out.append(
            {
                "N": N,
                "dispatcher": res.get("dispatcher", "nccl"),
                "kind": "sweep",
                "pattern": "uniform",
                "condition": "sweep",
                "step": -1,
                "layer": -1,
                "_matrix": np.full((N, N), s["bytes_per_rank"] / N),
                "dispatch": {"median_ms": s["median_ms"]},
                "combine": {"median_ms": s["median_ms"]},
            }
        )
    return out


def _model_of(res: dict, case: dict) -> str:
    if case.get("model"):
        return str(case["model"])
    return str(((res.get("source") or {}).get("real") or {}).get("model", ""))


def _samples(res: dict, top: dict, path: Path, stem: str, dry_run: bool = False) -> list[tuple]:
    """(key, b, t, id, kind, pattern, role, model, condition) of every (case, phase) of one result."""
    _refuse_dry_run(res, path, dry_run)
    schema = res.get("upgraded_from") or res["schema"]  # the schema the file was written in
    machine, device = _machine(res, top)
    out = []
    for i, c in enumerate(_rows(res)):
        check = str(c.get("check") or "ok")
        if check not in ("ok", "off") and not check.startswith("skipped"):  # wrong tokens arrived: not this traffic
            continue
        N, kind, disp = int(c["N"]), str(c.get("kind", "")), ALIASES.get(c["dispatcher"], str(c["dispatcher"]))
        b = c["_matrix"] if "_matrix" in c else np.asarray(c["splits"], dtype=np.float64) * float(c["row_bytes"])
        model, cond = _model_of(res, c), str(c.get("condition", ""))
        role = _role(kind, schema, model, cond, c.get("step"), c.get("layer"))
        cid = f"{stem}:{machine}:{disp}:N{N}:{i}:{kind}:{cond}:s{c.get('step')}:l{c.get('layer')}"
        pattern = str(
            c.get("pattern")
            or (
                "routing"
                if kind in ("real", "mock")
                else "uniform"
                if kind in ("balanced", "sweep")
                else "hot-receiver"
            )
        )
        for phase in PHASES:
            if (c.get(phase) or {}).get("median_ms") is None:
                continue
            bb = np.asarray(b, dtype=np.float64)
            out.append(
                (
                    (machine, device, N, disp, phase),
                    bb.T if phase == "combine" else bb,
                    c[phase]["median_ms"] * 1e-3,
                    cid,
                    kind,
                    pattern,
                    role,
                    model,
                    cond,
                )
            )
    return out


def load_groups(paths, dry_run: bool = False) -> tuple[list[Group], list[Source]]:
    """Replay result files -> (sample groups sorted by key, their sources); ``dry_run``: accept CPU
    (gloo) results, for ``dodoco calibrate --dry-run`` alone, whose file says it is one."""
    from dodoco.replay.results import read_results

    rows, sources = [], []
    for p in map(Path, paths):
        results, top, digest = read_results(p)
        for res in results:
            rows += _samples(res, top, p, p.stem, dry_run)
        machines = sorted({_machine(r, top)[0] for r in results})
        devices = sorted({_machine(r, top)[1] for r in results})
        schemas = {str(r.get("upgraded_from") or r.get("schema")) for r in results}
        sources.append(
            Source(
                str(p),
                digest,
                ",".join(sorted(schemas)),
                ",".join(machines),
                ",".join(devices),
                str(max((r.get("created", "") for r in results), default="")),
            )
        )
    if not rows:
        raise DodocoError(f"no timed cases in {[str(p) for p in paths]}: replay with --sweep and skew controls")
    groups = {}
    for r in rows:
        groups.setdefault(r[0], []).append(r)
    return [_group(k, v) for k, v in sorted(groups.items())], sources


def _group(key, rows) -> Group:
    machine, device, N, disp, phase = key
    col = lambda j: tuple(r[j] for r in rows)  # noqa: E731
    return Group(
        machine,
        device,
        N,
        disp,
        phase,
        np.stack([r[1] for r in rows]),
        np.asarray([r[2] for r in rows], dtype=np.float64),
        *(col(j) for j in range(3, 9)),
    )
