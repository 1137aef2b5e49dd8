"""The expert-compute model as data: one calibration per (GPU, kernel), chosen by held-out error.

``calibrate`` takes measured ranks (loads, expert shape, ms) of the calibration grid, compares every
form of ``dodoco.compute.fit`` at each tile size by k-fold held-out error, keeps the best and fits
it on all the grid. ``ComputeModel`` predicts a rank's expert time from its loads for any SwiGLU
shape, and says whose calibration it is. Files: schema ``dodoco.compute/1``; DODOCO ships one per
GPU and kernel (``presets/compute-<gpu>-<kernel>.json``). A GPU is recognised from its name
(``gpu_key``): "NVIDIA H100 80GB HBM3" is h100, "NVIDIA H200" is h200.

Shape legend: R ranks (cases), G experts per rank, P coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dodoco.config import pick
from dodoco.compute.features import ACTS, ExpertShape, features, features_many, pad_loads
from dodoco.compute.fit import FORMS, fit_form, kfold_errors, predict_form
from dodoco.errors import DodocoError
from dodoco.host import gpu_key

__all__ = [
    "KERNELS",
    "PRESETS",
    "SCHEMA",
    "TILES",
    "ComputeModel",
    "calibrate",
    "load_model",
    "resolve_model",
    "scored_ranks",
    "shipped_models",
]

SCHEMA = "dodoco.compute/1"
TILES = (64, 128, 256)
#: forms are scored on the grid's ranks that look like routed ones: tokens on the rank in this range
#: and uneven loads (coefficient of variation over the rank's experts above UNEVEN), when there are
#: at least MIN_SCORED of them (else on every rank); every form is fitted on the whole grid
TARGET_TOKENS, UNEVEN, MIN_SCORED = (128, 8192), 0.2, 30
PRESETS = Path(__file__).parent / "presets"
#: kernel name -> what it is (``dodoco.compute.kernels`` runs them)
KERNELS = {
    "grouped_mm": "torch._grouped_mm, one launch per GEMM over uneven groups (torchtitan, transformers' "
    "grouped experts)",
    "loop": "a per-expert loop of F.linear over non-empty experts (eager transformers experts)",
    "megatron": "Megatron-Core's fused MoE (its inference path: permute, grouped_mm, squared ReLU, unpermute) for "
    "ReLU^2 experts; its SwiGLU grouped MLP (TEGroupedMLP) needs transformer_engine",
}


@dataclass(frozen=True)
class ComputeModel:
    """A fitted form for one GPU and kernel; ``info`` records torch, date, dodoco version, the
    shapes and cases fitted on, peaks measured and every form's held-out error."""

    gpu: str
    device: str
    kernel: str
    form: str
    tile_m: int
    tile_n: int
    sms: int
    coef: np.ndarray
    info: dict = field(default_factory=dict, compare=False)

    def predict(self, loads, shape: ExpertShape) -> np.ndarray:
        """Predicted ms of each rank: loads = list of R lists (tokens per local expert) -> float64 [R]."""
        t, valid = pad_loads(loads)
        return self.predict_padded(t, valid, shape)

    def predict_padded(self, t, valid, shape: ExpertShape) -> np.ndarray:
        """Predicted ms of ranks with loads t[R, G] (valid[R, G]) -> float64 [R]; 0 for a rank without tokens."""
        F = features(t, valid, shape, self.tile_m, self.tile_n, self.sms)
        y = predict_form(FORMS[self.form], F, self.coef)
        return np.where(F.case["tokens"] > 0, y, 0.0)

    @property
    def acts(self) -> tuple[str, ...]:
        """Expert activations of the grid this was fitted on (calibrations made before ``acts`` was
        recorded were fitted on SwiGLU shapes only)."""
        return tuple(self.info.get("acts") or ("swiglu",))

    def label(self, for_gpu: str | None = None, act: str | None = None) -> str:
        """'calibrated: <kernel> on <device> (torch, date)', plus a warning when used for another GPU, and
        one when used for experts of an activation ``act`` its grid did not hold."""
        when = ", ".join(str(self.info[k]) for k in ("torch", "date") if self.info.get(k))
        out = f"calibrated: {self.kernel} on {self.device}" + (f" ({when})" if when else "")
        if for_gpu and gpu_key(for_gpu) != self.gpu:
            out += f"; ANOTHER GPU's calibration used for {gpu_key(for_gpu)}"
        if act and act not in self.acts:
            out += (
                f"; {ACTS[act][0]} experts outside its grid ({', '.join(ACTS[a][0] for a in self.acts)} only: "
                "docs/compute.md section 3 measured a bias of +5-7% under grouped_mm)"
            )
        return out

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            **pick(self, "gpu device kernel form"),
            "params": FORMS[self.form].params,
            "coef": [float(c) for c in self.coef],
            **pick(self, "tile_m tile_n sms"),
            **self.info,
        }

    @classmethod
    def from_dict(cls, d: dict, where: str = "compute calibration") -> "ComputeModel":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise DodocoError(f"{where} has schema {got!r}, expected {SCHEMA!r}: make one with `dodoco calibrate`")
        if d.get("form") not in FORMS:
            raise DodocoError(f"{where} has unknown form {d.get('form')!r}: known forms are {list(FORMS)}")
        coef = np.asarray(d.get("coef", []), dtype=np.float64)
        if coef.shape != (len(FORMS[d["form"]].params),) or not np.all(np.isfinite(coef)) or np.any(coef < 0):
            raise DodocoError(f"{where}: coef must be {len(FORMS[d['form']].params)} non-negative numbers")
        core = {"schema", "gpu", "device", "kernel", "form", "params", "coef", "tile_m", "tile_n", "sms"}
        return cls(
            str(d["gpu"]),
            str(d["device"]),
            str(d["kernel"]),
            d["form"],
            int(d["tile_m"]),
            int(d["tile_n"]),
            int(d["sms"]),
            coef,
            {k: v for k, v in d.items() if k not in core},
        )


def load_model(path) -> ComputeModel:
    """A compute calibration file -> ComputeModel (one-line errors for missing or wrong files)."""
    from dodoco.jsonfile import read_json

    d, _ = read_json(Path(path), "compute calibration", "make one with `dodoco calibrate` on the GPU")
    return ComputeModel.from_dict(d, str(path))


def shipped_models() -> dict:
    """(gpu, kernel) -> path of every calibration DODOCO ships."""
    out = {}
    for p in sorted(PRESETS.glob("compute-*.json")):
        gpu, _, kernel = p.stem[len("compute-") :].partition("-")
        out[(gpu, kernel)] = p
    return out


def resolve_model(gpu: str, kernel: str = "grouped_mm", path=None) -> ComputeModel:
    """The calibration to predict ``kernel`` on ``gpu`` with: ``path`` if given, else the shipped
    one of that GPU, else another GPU's shipped one for the kernel (its label says so)."""
    if kernel not in KERNELS:
        raise DodocoError(f"unknown kernel {kernel!r}: known kernels are {', '.join(KERNELS)}")
    if path:
        return load_model(path)
    ships = shipped_models()
    key = gpu_key(gpu)
    if (key, kernel) in ships:
        return load_model(ships[(key, kernel)])
    others = sorted(g for g, k in ships if k == kernel)
    if not others:
        raise DodocoError(
            f"no calibration of kernel {kernel!r} ships with DODOCO: make one with `dodoco calibrate` "
            "on the GPU and pass it with --calibration FILE"
        )
    return load_model(ships[(others[-1], kernel)])


def scored_ranks(t, valid) -> np.ndarray:
    """Which ranks (loads t[R, G], valid[R, G]) score a form's held-out error -> bool [R]: those with
    TARGET_TOKENS tokens and uneven loads (coefficient of variation > UNEVEN), or all when fewer than
    MIN_SCORED qualify."""
    t = np.where(valid, t, 0).astype(np.float64)
    n = valid.sum(-1)
    tok = t.sum(-1)
    mean = tok / np.maximum(n, 1)
    sd = np.sqrt((np.where(valid, (t - mean[:, None]) ** 2, 0.0)).sum(-1) / np.maximum(n, 1))
    lo, hi = TARGET_TOKENS
    mask = (tok >= lo) & (tok <= hi) & (sd > UNEVEN * mean)
    return mask if mask.sum() >= MIN_SCORED else np.ones_like(mask)


def _selection(t, valid, shapes, y, sms: int, folds: int, seed: int, groups) -> list[dict]:
    rows = []
    scored = scored_ranks(t, valid)
    for name, form in FORMS.items():
        for tile in TILES if form.tiled else TILES[-1:]:
            F = features_many(t, valid, shapes, tile, 128, sms)
            e = np.abs(kfold_errors(form, F, y, folds, seed, groups))[scored]
            rows.append(
                {
                    "form": name,
                    "tile_m": tile,
                    "median_abs_err": float(np.median(e)),
                    "p90_abs_err": float(np.quantile(e, 0.9)),
                    "max_abs_err": float(e.max()),
                    "scored": int(scored.sum()),
                }
            )
    return rows


def calibrate(
    loads,
    shapes,
    ms,
    *,
    kernel: str,
    device: str,
    sms: int,
    folds: int = 5,
    seed: int = 0,
    groups=None,
    info: dict | None = None,
) -> ComputeModel:
    """Fit the compute model of one GPU and kernel to measured ranks: loads (R lists or [R, G]),
    shapes[R] ExpertShape, ms[R] > 0. The form and tile with the lowest held-out p90 error (then
    median) on the ranks ``scored_ranks`` picks win; ``info['selection']`` keeps every form's held-out
    errors."""
    y = np.asarray(ms, dtype=np.float64)
    t, valid = pad_loads(loads)
    if y.shape != (t.shape[0],) or np.any(~(y > 0)):
        raise DodocoError(
            f"calibration needs one positive time per rank: got {y.shape[0]} times for {t.shape[0]} ranks"
        )
    rows = _selection(t, valid, shapes, y, sms, folds, seed, groups)
    best = min(rows, key=lambda r: (round(r["p90_abs_err"], 4), r["median_abs_err"]))
    F = features_many(t, valid, shapes, best["tile_m"], 128, sms)
    coef = fit_form(FORMS[best["form"]], F, y)
    fitted = sorted({s.label() for s in shapes})
    meta = {
        **(info or {}),
        "cases": int(y.shape[0]),
        "shapes": fitted,
        "acts": sorted({s.act for s in shapes}),
        "selection": rows,
        "held_out": {k: best[k] for k in ("median_abs_err", "p90_abs_err", "max_abs_err")},
    }
    return ComputeModel(gpu_key(device), device, kernel, best["form"], best["tile_m"], 128, int(sms), coef, meta)
