"""``dodoco compute`` as a function: predict ranks' expert time from loads, or measure a run's ranks.

Two uses of one config (``ComputeConfig``):

- predict (``--loads LOADS.json``, no GPU): LOADS.json is a JSON list of lists, tokens per local
  expert, one list per rank; the result is one predicted time per rank in the same order, from
  the calibration of the GPU named (shipped, or ``--calibration FILE``), labelled with whose
  calibration it is (another GPU's says so);
- measure (run directories, a GPU): each chosen rank of each step and layer of the runs at EP N
  (``dodoco.compute.cases``: the run's steps and the placement's evaluation policy) through every
  kernel named, beside its balanced control, its roofline floor and the model's prediction.

Shape legend: R ranks, G experts of a rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from dodoco.compute.cases import WHICH
from dodoco.compute.result import ComputeResult, config_shape
from dodoco.config import Config
from dodoco.errors import DodocoError

__all__ = ["ComputeConfig", "ComputeResult", "compute", "read_loads"]

MAX_RANKS, MAX_EXPERTS = 1 << 16, 1 << 12


@dataclass(frozen=True, kw_only=True)
class ComputeConfig(Config):
    """Settings of ``dodoco compute`` (flags and TOML keys alike)."""

    runs: tuple[str, ...] = ()
    loads: str | None = None
    gpu: str | None = None
    kernel: tuple[str, ...] = ("grouped_mm",)
    shape: str | None = None
    hidden: int | None = None
    width: int | None = None
    act: str | None = None
    calibration: str | None = None
    ep: tuple[int, ...] = (8,)
    batch: int = 1
    placement: str = "contiguous"
    layers: tuple[int, ...] | None = None
    max_steps: int = 1
    which: tuple[str, ...] = WHICH
    device: str = "cuda"
    seed: int = 0
    json: str | None = None
    out: str | None = None

    def __post_init__(self):
        from dodoco.compute.model import KERNELS

        if bool(self.loads) == bool(self.runs):
            raise DodocoError("give --loads LOADS.json to predict, or run directories to measure (not both)")
        for k in self.kernel:
            if k not in KERNELS:
                raise DodocoError(f"unknown kernel {k!r}: known kernels are {', '.join(KERNELS)}")
        if self.loads and len(self.kernel) != 1:
            raise DodocoError("predicting takes one --kernel (e.g. --kernel grouped_mm)")
        for key in ("batch", "max_steps"):
            if not 1 <= getattr(self, key) <= 1 << 20:
                raise DodocoError(f"--{key.replace('_', '-')} {getattr(self, key)} must be in 1..{1 << 20}")
        if not self.ep or any(not 1 <= n <= 1 << 16 for n in self.ep):
            raise DodocoError(f"--ep {list(self.ep)}: give EP degrees in 1..65536, e.g. --ep 8,32")
        if self.seed < 0:
            raise DodocoError(f"--seed {self.seed} must be >= 0")


def read_loads(path) -> list:
    """LOADS.json -> list of R lists of whole tokens; one-line errors for anything else."""
    from dodoco.compute.features import pad_loads
    from dodoco.jsonfile import read_json

    d, _ = read_json(Path(path), "loads file", "give a JSON list of lists, tokens per local expert per rank")
    if not isinstance(d, list) or not all(isinstance(r, list) for r in d):
        raise DodocoError(
            f"{path}: loads must be a JSON list of lists (one list of tokens per local expert per rank), "
            "e.g. [[120, 0, 64], [30, 30, 30]]"
        )
    if len(d) > MAX_RANKS or any(len(r) > MAX_EXPERTS for r in d):
        raise DodocoError(f"{path}: at most {MAX_RANKS} ranks of {MAX_EXPERTS} experts each")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for r in d for v in r):
        raise DodocoError(f"{path}: loads hold a value that is not a number: give whole token counts")
    pad_loads(d)  # the value checks, one line each
    return d


def _predict(cfg: ComputeConfig) -> ComputeResult:
    from dodoco.compute.model import resolve_model

    if not cfg.gpu:
        raise DodocoError(
            "predicting needs the GPU: give --gpu h100 or --gpu h200 (or --calibration FILE)"
            if not cfg.calibration
            else "give --gpu too, so the output can say whose calibration it is"
        )
    loads = read_loads(cfg.loads)
    shape, label = config_shape(cfg)
    model = resolve_model(cfg.gpu, cfg.kernel[0], cfg.calibration)
    ms = model.predict(loads, shape)
    rows = [
        {
            "rank": i,
            "experts": len(r),
            "tokens": int(sum(r)),
            "nonempty": int(sum(1 for v in r if v)),
            "predicted_ms": float(m),
        }
        for i, (r, m) in enumerate(zip(loads, ms))
    ]
    title = f"predicted expert compute, {shape.label()}, {cfg.kernel[0]} on {cfg.gpu}"
    notes = [
        f"{model.label(cfg.gpu, shape.act)}; form {model.form} (docs/compute.md)",
        f"shape: {label}",
        "predictions of the model, not measurements",
    ]
    return ComputeResult(
        title, rows, ["rank", "experts", "nonempty", "tokens", "predicted_ms"], notes, [float(m) for m in ms]
    )


def compute(cfg: ComputeConfig) -> ComputeResult:
    """Predict (``cfg.loads``) or measure (``cfg.runs``) ranks' expert compute."""
    if cfg.loads:
        return _predict(cfg)
    from dodoco.compute.replay import measure_runs

    return measure_runs(cfg)
