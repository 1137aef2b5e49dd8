"""Settings of ``dodoco calibrate`` (``CalibrateConfig``) and the grids it measures.

The dispatch grid is the calibration grid of ``bench/bench_dispatch.py`` (per-rank sizes x receiver
skews x hot-receiver / hot-pair patterns, E = 256, K = 8, H = 7168), with fewer skews (6 instead of
12) so that 4 GPUs finish in under 5 minutes (docs/dispatch.md, "dodoco calibrate"); the expert-compute
grid is ``dodoco.compute.grid.calibration_grid`` at the paper's four routed-expert shapes, as
``bench/bench_compute.py`` measures it. A dry run (``--dry-run``: gloo on CPU) exercises the same
path at toy sizes (H = 64, sizes in units of 128 KiB instead of MiB, expert shapes divided by 64, a
smaller compute grid).
"""

from __future__ import annotations

from dataclasses import dataclass

from dodoco.config import Config
from dodoco.errors import DodocoError

__all__ = ["COMPUTE_SHAPES", "DRY", "CalibrateConfig", "GRID_MB", "SKEWS"]

GRID_MB = (16, 32, 64, 128, 256, 512)
SKEWS = (1.0, 1.1, 1.25, 1.5, 2.0, 3.0)
PATTERNS = ("hot-receiver", "hot-pair")
COMPUTE_SHAPES = ("deepseek-v3", "deepseek-v2-lite", "qwen3-30b-a3b", "qwen3.5-35b-a3b")
#: what --dry-run changes: the path, not the measurement (sizes in units of 128 KiB, so that the balanced curve
#: still has points over 1 MiB at N = 2; toy shapes; a small compute grid timed with few repetitions)
DRY = {"hidden": 64, "unit": 17, "iters": 3, "warmup": 1, "shape_scale": 64, "max_tokens": 256, "random_cases": 4}


@dataclass(frozen=True, kw_only=True)
class CalibrateConfig(Config):
    """Settings of ``dodoco calibrate`` (flags and TOML keys alike)."""

    out: str = "dodoco-calibration.json"
    work: str | None = None  # finished parts, for resuming (default: OUT.parts next to OUT)
    machine: str | None = None  # label of this machine (default: GPU and count, e.g. h200-x4)
    dry_run: bool = False
    backend: str = "nccl"
    nproc: int | None = None  # GPUs (default: every visible one; the dry run: 2 processes)
    ranks: tuple[int, ...] | None = None  # EP degrees to calibrate (default: nproc)
    dispatcher: tuple[str, ...] = ("all",)
    sizes_mb: tuple[int, ...] = GRID_MB
    skews: tuple[float, ...] = SKEWS
    patterns: tuple[str, ...] = PATTERNS
    hidden: int = 7168
    experts: int = 256
    topk: int = 8
    iters: int = 10
    warmup: int = 3
    compute: bool = True
    kernel: tuple[str, ...] = ("grouped_mm",)
    shapes: tuple[str, ...] = COMPUTE_SHAPES
    device: str = "cuda"
    timeout_s: float = 300.0

    def __post_init__(self):
        from dodoco.compute.model import KERNELS
        from dodoco.compute.shapes import SHAPES
        from dodoco.replay.config import PATTERNS as ALL

        if self.backend not in ("nccl", "gloo"):
            raise DodocoError(f"--backend {self.backend!r}: nccl (GPUs) or gloo (with --dry-run, CPU)")
        if self.dry_run and self.backend != "gloo":
            raise DodocoError("--dry-run runs on gloo (CPU processes): drop --backend nccl")
        if self.backend == "gloo" and not self.dry_run:
            raise DodocoError(
                "a gloo (CPU) run is not a calibration: run `dodoco calibrate` on the GPUs, or add "
                "--dry-run to check the path (its file says DRY RUN and simulate refuses it)"
            )
        for name, vals in (("sizes-mb", self.sizes_mb), ("skews", self.skews)):
            if not vals or any(v <= 0 for v in vals):
                raise DodocoError(f"--{name} {list(vals)}: give positive values, e.g. --{name} 16,64,256")
        if min(self.skews) < 1.0 or 1.0 not in self.skews:
            raise DodocoError(f"--skews {list(self.skews)}: receiver skews are >= 1 and must include 1 (balanced)")
        for p in self.patterns:
            if p not in ALL:
                raise DodocoError(f"unknown pattern {p!r}: choose from {', '.join(ALL)}")
        for k in self.kernel:
            if k not in KERNELS or k == "megatron":
                raise DodocoError(f"--kernel {k!r}: the compute calibration measures grouped_mm or loop")
        for s in self.shapes:
            if s not in SHAPES:
                raise DodocoError(f"unknown expert shape {s!r}: known shapes are {', '.join(SHAPES)}")
        for key in ("hidden", "experts", "topk", "iters", "nproc"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise DodocoError(f"--{key} {v} must be >= 1")
        if self.ranks is not None and any(n < 2 for n in self.ranks):
            raise DodocoError(f"--ranks {list(self.ranks)}: a dispatch calibration needs 2 ranks or more")

    def dry(self, key: str):
        """The dry-run value of ``key`` (``DRY``), or the setting itself on GPUs."""
        return (
            DRY[key]
            if self.dry_run
            else {
                "hidden": self.hidden,
                "unit": 20,
                "iters": self.iters,
                "warmup": self.warmup,
                "shape_scale": 1,
                "max_tokens": 65536,
                "random_cases": 48,
            }[key]
        )
