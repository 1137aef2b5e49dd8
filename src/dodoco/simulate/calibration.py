"""A calibration as data: the fitted dispatch model per (machine, N, dispatcher, phase), its sources.

``Fit`` is one fitted form (``dodoco.simulate.forms``): the balanced curve, the calibrated sizes
(knots, log2 bytes per rank) and the parameters at each (theta[k, P]), interpolated linearly in
log2 size between knots and held constant outside. ``Calibration`` holds the fits, the replay
files they came from (path, sha256, machine, device, date), the dodoco version and the creation
time, the host it was measured on (``dodoco.host``: GPU, count, interconnect, driver, CUDA, NCCL,
torch), the expert-compute models measured with it (``dodoco calibrate``: one per kernel,
``dodoco.compute.model``) and whether it is a dry run, and reads and writes them as JSON (schema
``dodoco.calibration/2``; ``/1`` files, which record no host, read with the host their fits and
sources name); presets ship one beside their cluster TOML (``presets/<name>.calibration.json``).
A dry run (``dodoco calibrate --dry-run``, gloo on CPU) is refused by ``load_calibration`` unless
asked for by the tests and the dry-run benchmark.

Shape legend: N EP ranks.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dodoco.config import pick
from dodoco.errors import DodocoError
from dodoco.simulate.forms import FORMS, Balanced, feats

__all__ = ["SCHEMA", "Calibration", "Fit", "load_calibration"]

SCHEMA = "dodoco.calibration/2"
SCHEMAS = ("dodoco.calibration/1", SCHEMA)


@dataclass(frozen=True)
class Fit:
    """One fitted form for (machine, N, dispatcher, phase); ``info`` keeps its selection record."""

    machine: str
    device: str
    N: int
    dispatcher: str
    phase: str
    form: str
    balanced: Balanced
    knots: np.ndarray
    theta: np.ndarray
    info: dict = field(default_factory=dict, compare=False)

    def theta_at(self, x) -> np.ndarray:
        """Parameters at per-rank sizes x[n] -> [n, P] (linear in log2 x between knots, clamped)."""
        lx = np.log2(np.maximum(np.asarray(x, dtype=np.float64), 1.0))
        P = self.theta.shape[1]
        return (
            np.stack([np.interp(lx, self.knots, self.theta[:, p]) for p in range(P)], axis=-1)
            if P
            else np.zeros(lx.shape + (0,))
        )

    def predict(self, b) -> np.ndarray:
        """Predicted time (s) of AlltoAlls with byte matrices b[..., N', N'] -> [...] (parameters at each
        matrix's own per-rank size)."""
        b = np.asarray(b, dtype=np.float64)
        f = feats(b.reshape((-1,) + b.shape[-2:]))
        return FORMS[self.form].predict(f, self.balanced, self.theta_at(f.x)).reshape(b.shape[:-2])

    def label(self) -> str:
        return f"{self.machine} N={self.N} {self.dispatcher} {self.phase}: {self.form}"

    def to_dict(self) -> dict:
        return {
            **pick(self, "machine device N dispatcher phase form"),
            "params": list(FORMS[self.form].params),
            "balanced": self.balanced.to_dict(),
            "knots_MB": (2.0**self.knots / 1e6).tolist(),
            "theta": self.theta.tolist(),
            **self.info,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Fit":
        if d.get("form") not in FORMS:
            raise DodocoError(f"calibration fit has unknown form {d.get('form')!r}: known forms are {list(FORMS)}")
        knots = np.log2(np.asarray(d["knots_MB"], dtype=np.float64) * 1e6)
        theta = np.asarray(d["theta"], dtype=np.float64).reshape(len(knots), len(FORMS[d["form"]].params))
        skip = {"machine", "device", "N", "dispatcher", "phase", "form", "params", "balanced", "knots_MB", "theta"}
        return cls(
            d["machine"],
            d["device"],
            int(d["N"]),
            d["dispatcher"],
            d["phase"],
            d["form"],
            Balanced.from_dict(d["balanced"]),
            knots,
            theta,
            {k: v for k, v in d.items() if k not in skip},
        )


@dataclass(frozen=True)
class Calibration:
    """Fits with their sources (``measure.Source`` dicts), creation time, dodoco version and notes."""

    fits: tuple
    sources: tuple
    created: str = ""
    dodoco: str = ""
    notes: tuple = ()
    path: str = ""
    host: dict = field(default_factory=dict, compare=False)
    compute: dict = field(default_factory=dict, compare=False)  # kernel -> ComputeModel dict
    dry_run: bool = False
    meta: dict = field(default_factory=dict, compare=False)  # dodoco calibrate: settings, dispatchers, parts

    @property
    def dispatchers(self) -> list[str]:
        return sorted({f.dispatcher for f in self.fits})

    @property
    def machines(self) -> list[str]:
        return sorted({f.machine for f in self.fits})

    def describe(self) -> str:
        """One line: where the calibration comes from (host, interconnect, date, file)."""
        from dodoco.host import describe

        dates = sorted({s.get("created", "")[:10] for s in self.sources if s.get("created")})
        where = Path(self.path).name if self.path else ", ".join(Path(s["path"]).name for s in self.sources)
        host = (
            describe(self.host)
            if self.host
            else f"{', '.join(self.machines)} ({', '.join(sorted({f.device for f in self.fits}))})"
        )
        return (
            "DRY RUN (gloo on CPU, not a measurement) " if self.dry_run else ""
        ) + f"{host}; measured {', '.join(dates) or '?'}; {where}"

    def compute_model(self, kernel: str):
        """The expert-compute model of ``kernel`` measured with this calibration, or None."""
        from dodoco.compute.model import ComputeModel

        d = self.compute.get(kernel)
        return ComputeModel.from_dict(d, f"{self.path or 'calibration'} compute[{kernel}]") if d else None

    def lookup(self, N: int, dispatcher: str, phase: str, machine: str | None = None) -> tuple[Fit, str]:
        """The fit for an alltoall over N ranks: the calibrated N itself, else the largest calibrated
        N below it (else the smallest above); several machines: the one with most fit samples (or
        ``machine``) -> (fit, a note saying which N was used)."""
        cands = [
            f for f in self.fits if f.dispatcher == dispatcher and f.phase == phase and machine in (None, f.machine)
        ]
        if not self.fits:
            raise DodocoError(
                f"{self.path or 'the calibration'} holds no dispatch fit (made on one GPU: nothing crossed "
                "a link): calibrate on a host of 2 GPUs or more, or pass its compute model alone with "
                "--compute-calibration"
            )
        if not cands:
            raise DodocoError(
                f"the calibration has no {phase} fit for dispatcher {dispatcher!r}: it holds "
                f"{self.dispatchers}; replay that dispatcher or choose one of them"
            )
        ns = sorted({f.N for f in cands})
        below = [n for n in ns if n <= N]
        n = below[-1] if below else ns[0]
        fit = max((f for f in cands if f.N == n), key=lambda f: f.info.get("n_fit", 0))
        return fit, ("" if n == N else f"fit of N={n} used for N={N}")

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            **pick(self, "created dodoco dry_run host"),
            "sources": list(self.sources),
            "notes": list(self.notes),
            "fits": [f.to_dict() for f in self.fits],
            "compute": self.compute,
        } | ({"calibrate": self.meta} if self.meta else {})

    @classmethod
    def from_dict(cls, d: dict, path: str = "", allow_dry_run: bool = False) -> "Calibration":
        if d.get("schema") not in SCHEMAS:
            raise DodocoError(f"{path or 'calibration'} has schema {d.get('schema')!r}, expected {SCHEMA!r}")
        if d.get("dry_run") and not allow_dry_run:
            raise DodocoError(
                f"{path or 'calibration'} is a DRY RUN of dodoco calibrate (gloo on CPU): its times are "
                "CPU times, not this machine's; run `dodoco calibrate` on the GPUs and pass that file"
            )
        fits = tuple(Fit.from_dict(f) for f in d["fits"])
        sources = tuple(d.get("sources", ()))
        host = d.get("host") or _recorded_host(fits, sources)
        return cls(
            fits,
            sources,
            d.get("created", ""),
            d.get("dodoco", ""),
            tuple(d.get("notes", ())),
            str(path),
            host,
            dict(d.get("compute") or {}),
            bool(d.get("dry_run", False)),
            dict(d.get("calibrate") or {}),
        )

    @classmethod
    def new(cls, fits, sources, notes=(), **kw) -> "Calibration":
        from dodoco.provenance import VERSION

        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return cls(
            tuple(fits),
            tuple(s.to_dict() if hasattr(s, "to_dict") else s for s in sources),
            now,
            VERSION,
            tuple(notes),
            **kw,
        )


def _recorded_host(fits, sources) -> dict:
    """The host a schema-1 calibration names: its fits' machine and device (no count, no topology)."""
    import re

    from dodoco.host import gpu_key

    if not fits:
        return {}
    machines = sorted({f.machine for f in fits})
    devices = sorted({f.device for f in fits})
    count = re.search(r"-x(\d+)$", machines[0]) if len(machines) == 1 else None
    return {
        "machine": ", ".join(machines),
        "gpu": ", ".join(devices),
        "gpu_key": gpu_key(devices[0]) if len(devices) == 1 else None,
        "gpu_count": int(count.group(1)) if count else None,
        "recorded": "only the machine label and device of its fits (a dodoco.calibration/1 file)",
    }


def load_calibration(path, allow_dry_run: bool = False) -> Calibration:
    """A calibration JSON (``dodoco.calibration/1`` or ``/2``) -> Calibration; a dry run is refused
    (one line) unless ``allow_dry_run``."""
    from dodoco.jsonfile import read_json

    d, _ = read_json(path, "calibration", "make one with `dodoco calibrate` on the GPUs")
    if not isinstance(d, dict):
        raise DodocoError(f"calibration {path} holds no calibration object: make one with `dodoco calibrate`")
    return Calibration.from_dict(d, str(path), allow_dry_run)
