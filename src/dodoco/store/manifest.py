"""The typed run manifest (``manifest.json``): written and read here, and nowhere else.

Schema ``dodoco.run/2``::

    {"schema", "status", "origin", "identity",
     "model": {"id", "revision", "architecture", "details"},
     "routing": {"E", "K", "L", "layer_ids"},
     "condition": {"name", "kind", "provenance"},
     "seq_len", "sequences", "granularity",
     "files": {name: {"sha256", "shape", "dtype", "bytes"}},
     "details": {...}}

``identity`` is what determines the run's data (model and weights, condition and its source, seeds,
sequence length and count, dtype): a rerun resumes only when it is unchanged. ``details`` holds the
rest of the provenance (versions, device, throughput, batch invariance, the import's source files
and notes). A directory that is being written holds a stub ``{"schema", "status": "running",
"origin", "identity"}``. Manifests of schema ``dodoco.run/1`` are read through ``migrate``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from dodoco.config import MAX_EXPERTS
from dodoco.errors import DataError, DodocoError

__all__ = [
    "SCHEMA",
    "ConditionInfo",
    "ConditionKind",
    "DataFile",
    "Granularity",
    "MANIFEST",
    "Manifest",
    "ModelInfo",
    "Origin",
    "Routing",
    "Status",
    "migrate",
    "read_manifest",
    "read_raw",
    "seal_of",
    "write_manifest",
    "write_stub",
]

SCHEMA = "dodoco.run/2"
SCHEMA_V1 = "dodoco.run/1"
MANIFEST = "manifest.json"
SEAL = "seal"
_MAX_BYTES = 64 << 20  # a manifest lists a few files: anything this large is not one


class Granularity(str, Enum):
    """What one row of counts is: a sequence (observed), a forward pass or a token's step (imported),
    or one aggregate window (imported totals: the run is one step)."""

    SEQUENCE = "sequence"
    PASS = "pass"
    TOKEN = "token"
    WINDOW = "window"


class ConditionKind(str, Enum):
    MOCK = "mock"
    REAL = "real"


class Origin(str, Enum):
    OBSERVED = "observed"
    IMPORTED = "imported"
    SYNTHETIC = "synthetic"


class Status(str, Enum):
    RUNNING = "running"
    COMPLETE = "complete"


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    id: str
    revision: str | None = None
    architecture: str | None = None
    details: dict = field(default_factory=dict)  # adapter, family, dtype, weights hash, ...


@dataclass(frozen=True, kw_only=True)
class Routing:
    """E routed experts, K experts per token (None when an import does not know it), L MoE layers
    and the model's layer id of each."""

    E: int
    K: int | None
    L: int
    layer_ids: tuple[int, ...]

    def __post_init__(self):
        if not (1 <= self.E <= MAX_EXPERTS and 1 <= self.L <= MAX_EXPERTS) or (
            self.K is not None and not 1 <= self.K <= self.E
        ):
            raise DodocoError(
                f"routing E={self.E}, K={self.K}, L={self.L} is impossible: need 1 <= E, L <= "
                f"{MAX_EXPERTS} and 1 <= K <= E"
            )
        if len(self.layer_ids) != self.L:
            raise DodocoError(f"routing lists {len(self.layer_ids)} layer ids for L={self.L} MoE layers")


@dataclass(frozen=True, kw_only=True)
class ConditionInfo:
    name: str
    kind: ConditionKind
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DataFile:
    sha256: str
    shape: tuple[int, ...]
    dtype: str
    bytes: int | None = None  # None in manifests migrated from dodoco.run/1


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A complete (or being completed) run's manifest; see the module docstring for the layout."""

    status: Status
    origin: Origin
    identity: dict
    model: ModelInfo
    routing: Routing
    condition: ConditionInfo
    seq_len: int
    sequences: int
    granularity: Granularity
    files: dict[str, DataFile] = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    schema: str = SCHEMA

    def replace(self, **changes) -> "Manifest":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The JSON form (Enums as their values, tuples as lists)."""
        return {
            "schema": self.schema,
            "status": self.status.value,
            "origin": self.origin.value,
            "identity": self.identity,
            "model": {
                "id": self.model.id,
                "revision": self.model.revision,
                "architecture": self.model.architecture,
                "details": self.model.details,
            },
            "routing": {
                "E": self.routing.E,
                "K": self.routing.K,
                "L": self.routing.L,
                "layer_ids": list(self.routing.layer_ids),
            },
            "condition": {
                "name": self.condition.name,
                "kind": self.condition.kind.value,
                "provenance": self.condition.provenance,
            },
            "seq_len": self.seq_len,
            "sequences": self.sequences,
            "granularity": self.granularity.value,
            "files": {
                k: {"sha256": f.sha256, "shape": list(f.shape), "dtype": f.dtype, "bytes": f.bytes}
                for k, f in self.files.items()
            },
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "manifest") -> "Manifest":
        """Parse the JSON form of schema dodoco.run/2 (run ``migrate`` first on older ones)."""
        try:
            m, r, c = d["model"], d["routing"], d["condition"]
            return cls(
                schema=d["schema"],
                status=Status(d["status"]),
                origin=Origin(d["origin"]),
                identity=dict(d["identity"]),
                model=ModelInfo(
                    id=str(m["id"]),
                    revision=m.get("revision"),
                    architecture=m.get("architecture"),
                    details=dict(m.get("details") or {}),
                ),
                routing=Routing(
                    E=int(r["E"]),
                    K=None if r.get("K") in (None, 0) else int(r["K"]),
                    L=int(r["L"]),
                    layer_ids=tuple(int(x) for x in r["layer_ids"]),
                ),
                condition=ConditionInfo(
                    name=str(c["name"]), kind=ConditionKind(c["kind"]), provenance=dict(c.get("provenance") or {})
                ),
                seq_len=int(d["seq_len"]),
                sequences=int(d["sequences"]),
                granularity=Granularity(d["granularity"]),
                files={
                    k: DataFile(
                        sha256=str(f["sha256"]),
                        shape=tuple(int(x) for x in f["shape"]),
                        dtype=str(f["dtype"]),
                        bytes=f.get("bytes"),
                    )
                    for k, f in d["files"].items()
                },
                details=dict(d.get("details") or {}),
            )
        except KeyError as exc:
            raise DataError(
                f"{where} lacks the key {exc}: the run is damaged; rerun observe/import with --overwrite"
            ) from None
        except (TypeError, ValueError, AttributeError, OverflowError, DodocoError) as exc:
            raise DataError(
                f"{where} holds an impossible value ({str(exc)[:200]}): the run is damaged; rerun "
                "observe/import with --overwrite"
            ) from None


_V1_MOVED = {
    "schema",
    "status",
    "spec",
    "kind",
    "model",
    "routing",
    "condition",
    "seq_len",
    "sequences",
    "granularity",
    "files",
}


def migrate(d: dict) -> dict:
    """A manifest of schema dodoco.run/1 in the JSON form of dodoco.run/2 (others unchanged).

    v1 kept the identity as ``spec``, the origin as ``kind``, the layer ids as ``moe_layer_ids``,
    model fields at the top of ``model``, and every other field at the top level; v2 moves those
    into ``model.details`` and ``details``. A v1 condition without ``kind`` is mock when its name
    starts with "mock-" (the only place a name decides the kind).
    """
    if d.get("schema") != SCHEMA_V1:
        return d
    model = dict(d.get("model") or {})
    routing = dict(d.get("routing") or {})
    cond = dict(d.get("condition") or {})
    kind = (
        cond.get("kind")
        if cond.get("kind") in ("mock", "real")
        else ("mock" if str(cond.get("name", "")).startswith("mock-") else "real")
    )
    return {
        "schema": SCHEMA,
        "status": d.get("status"),
        "origin": d.get("kind", "observed"),
        "identity": d.get("spec") or {},
        "model": {
            "id": model.pop("id", "unknown"),
            "revision": model.pop("revision", None),
            "architecture": model.pop("architecture", None),
            "details": model,
        },
        "routing": {
            "E": routing.get("E"),
            "K": routing.get("K"),
            "L": routing.get("L"),
            "layer_ids": routing.get("moe_layer_ids") or list(range(int(routing.get("L") or 0))),
        },
        "condition": {"name": cond.get("name"), "kind": kind, "provenance": cond.get("provenance") or {}},
        "seq_len": d.get("seq_len", 0),
        "sequences": d.get("sequences"),
        "granularity": d.get("granularity", "sequence"),
        "files": d.get("files") or {},
        "details": {k: v for k, v in d.items() if k not in _V1_MOVED},
    }


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def read_raw(path) -> dict:
    """The manifest JSON of run directory ``path`` as a dict (migrated to the current schema).

    DodocoError when ``path`` holds no manifest (not a run); DataError naming the file when it is not
    a regular file, not strict JSON (NaN, Infinity), nested absurdly deep, or not a DODOCO manifest."""
    from dodoco.paths import read_regular

    f = Path(path) / MANIFEST
    if not os.path.lexists(f):
        raise DodocoError(
            f"{path} is not a DODOCO run directory (no {MANIFEST}): run `dodoco observe` or `dodoco import` to make one"
        )
    fix = "rerun observe/import with --overwrite"
    data = read_regular(f, "manifest", DataError, limit=_MAX_BYTES)
    try:
        d = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{f} is corrupt ({str(exc)[:160]}): {fix}") from None
    except RecursionError:
        raise DataError(f"{f} is corrupt (nested too deeply to be a manifest): {fix}") from None
    if not isinstance(d, dict) or d.get("schema") not in (SCHEMA, SCHEMA_V1):
        found = d.get("schema") if isinstance(d, dict) else type(d).__name__
        raise DataError(f"{f} has schema {str(found)[:80]!r}, expected {SCHEMA!r}: not a DODOCO run manifest")
    return migrate(d)


def seal_of(d: dict) -> str:
    """The seal of a manifest's JSON form: sha256 of its canonical JSON (sorted keys, no spaces,
    ASCII) without the ``seal`` key."""
    body = {k: v for k, v in d.items() if k != SEAL}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def answer_fields(m: Manifest) -> tuple:
    """The fields every reader's answer rests on: (E, K, L, sequences, seq_len, condition kind,
    granularity, origin, model id, condition name). An edited manifest must keep them all or be
    refused (the fuzz oracles of tests/reliability and bench/bench_fuzz.py)."""
    r = m.routing
    return (
        r.E,
        r.K,
        r.L,
        m.sequences,
        m.seq_len,
        m.condition.kind,
        m.granularity,
        m.origin,
        m.model.id,
        m.condition.name,
    )


def read_manifest(path) -> Manifest:
    """The typed manifest of a finished run directory (DodocoError when unfinished, DataError when
    damaged or edited after DODOCO wrote it)."""
    d = read_raw(path)
    if d.get("status") != Status.COMPLETE.value:
        raise DodocoError(
            f"run {path} is unfinished (status {d.get('status')!r}): rerun the same "
            "`dodoco observe` command to resume it"
        )
    if SEAL in d and d[SEAL] != seal_of(d):
        raise DataError(
            f"{Path(path) / MANIFEST} was changed after DODOCO wrote it (its seal does not match its "
            f"content): `dodoco validate {path}` shows what contradicts the data; rerun observe/import "
            "with --overwrite to rebuild it"
        )
    return Manifest.from_dict(d, where=str(Path(path) / MANIFEST))


def write_manifest(path, manifest: Manifest, *, sealed: bool = True) -> None:
    """Write ``manifest`` as ``path/manifest.json`` atomically: strict JSON (NaN -> null), sealed
    (``sealed=False`` only to keep a run written before seals as it was)."""
    from dodoco.store.atomic import json_safe, jsonable, write_json

    d = json.loads(json.dumps(json_safe(manifest.to_dict()), default=jsonable))  # exactly what is read back
    if sealed:
        d[SEAL] = seal_of(d)
    write_json(Path(path) / MANIFEST, d)


def write_stub(path, identity: dict, origin: Origin) -> None:
    """Mark ``path`` as a run being written with this identity by this origin (status "running")."""
    from dodoco.store.atomic import write_json

    write_json(
        Path(path) / MANIFEST,
        {"schema": SCHEMA, "status": Status.RUNNING.value, "origin": Origin(origin).value, "identity": identity},
    )
