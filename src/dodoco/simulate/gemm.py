"""Expert compute time as a function of tokens per expert: a measured grouped-GEMM table.

One routed expert is a SwiGLU MLP of hidden size H and expert width I: y = x W1 (W1: [H, 2I]),
h = silu(y[:, :I]) * y[:, I:], out = h W2 (W2: [I, H]); 6*t*H*I FLOPs for t tokens.
``measure_gemm_table`` times G experts of t tokens each as one batched GEMM per matrix (bmm; the
grouped GEMM of equal groups) on a GPU for a sweep of t, with weights rotated past L2, and stores
the time per expert. A rank's expert compute is then sum over its experts of f(c_e), f the table
interpolated linearly in t (and extrapolated linearly past its last point). Tables for another
shape are scaled by FLOPs (H*I) and say so.

Shape legend: E routed experts, N EP ranks, H hidden size, I expert width, G experts in a group.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dodoco.errors import DodocoError

__all__ = ["DEFAULT_TOKENS", "GemmTable", "load_gemm_table", "measure_gemm_table", "rank_compute"]

DEFAULT_TOKENS = (0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
SCHEMA = "dodoco.gemm/1"


@dataclass(frozen=True)
class GemmTable:
    """Time per expert (ms) at tokens per expert t; measured for (hidden, width) on ``device``."""

    tokens: np.ndarray
    ms: np.ndarray
    hidden: int
    width: int
    device: str = ""
    scale: float = 1.0  # applied FLOP ratio when used for another shape
    origin: tuple | None = None  # (hidden, width) measured, when scaled to another shape

    def expert_ms(self, c) -> np.ndarray:
        """Per-expert compute time (ms) for token counts c[...] -> [...]; f(0) = 0."""
        c = np.asarray(c, dtype=np.float64)
        t, ms = self.tokens, self.ms
        out = np.interp(c, t, ms)
        slope = (ms[-1] - ms[-2]) / (t[-1] - t[-2])
        out = np.where(c > t[-1], ms[-1] + slope * (c - t[-1]), out)
        return np.where(c > 0, out, 0.0) * self.scale

    def for_shape(self, hidden: int, width: int) -> "GemmTable":
        """This table used for another expert shape, scaled by the FLOP ratio (hidden*width)."""
        if (hidden, width) == (self.hidden, self.width):
            return self
        return GemmTable(self.tokens, self.ms, hidden, width, self.device,
                         self.scale * (hidden * width) / (self.hidden * self.width), self.origin or (self.hidden, self.width))

    def label(self) -> str:
        """Where the compute times come from: measured for this shape, or nominal (scaled by FLOPs)."""
        if self.origin is None:
            return f"measured: {self.device or '?'} grouped GEMM, H={self.hidden} I={self.width}"
        h, w = self.origin
        return (f"nominal: {self.device or '?'} table measured at H={h} I={w}, scaled by FLOPs "
                f"x{self.scale:.3g} to H={self.hidden} I={self.width}")


def rank_compute(loads, rank_experts, table: GemmTable) -> np.ndarray:
    """Expert compute per rank (ms): loads[..., E] tokens per expert, rank_experts[N] index lists.

    -> [..., N]: sum over the experts each rank holds of table.expert_ms(load).
    """
    per_expert = table.expert_ms(loads)
    return np.stack([per_expert[..., np.asarray(ix, dtype=np.int64)].sum(-1) for ix in rank_experts], axis=-1)


def load_gemm_table(path) -> GemmTable:
    from dodoco.simulate.measure import read_json

    p = Path(path)
    d, _ = read_json(p, "GEMM table", "measure one with bench/bench_replay.py --gemm-only, or leave --gemm out")
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        d = d if isinstance(d, dict) else {}
        raise DodocoError(f"{p} has schema {d.get('schema')!r}, expected {SCHEMA!r}")
    t, ms = np.asarray(d["tokens_per_expert"], float), np.asarray(d["ms_per_expert"], float)
    if t.ndim != 1 or t.shape != ms.shape or t.size < 2 or np.any(np.diff(t) <= 0):
        raise DodocoError(f"{p}: tokens_per_expert must increase and match ms_per_expert (>= 2 points)")
    return GemmTable(t, ms, int(d["hidden"]), int(d["width"]), d.get("device", ""))


def measure_gemm_table(hidden: int, width: int, tokens=DEFAULT_TOKENS, experts: int = 8, iters: int = 20,
                       device: str = "cuda", dtype: str = "bfloat16") -> dict:
    """Time G=experts SwiGLU experts of t tokens each (bmm) for every t -> table dict (schema gemm/1)."""
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    dt = getattr(torch, dtype)
    G, H, I = experts, hidden, width
    wbytes = G * 3 * H * I * dt.itemsize
    sets = max(2, int(np.ceil(2 * 60e6 / wbytes)) + 1)  # weights rotated past a 60 MB L2
    W1 = [torch.randn(G, H, 2 * I, device=dev, dtype=dt) * H**-0.5 for _ in range(sets)]
    W2 = [torch.randn(G, I, H, device=dev, dtype=dt) * I**-0.5 for _ in range(sets)]
    rows = []
    for t in tokens:
        if t == 0:
            rows.append(0.0)
            continue
        x = torch.randn(G, t, H, device=dev, dtype=dt)

        def run(k):
            y = torch.bmm(x, W1[k % sets])
            h = F.silu(y[..., :I]) * y[..., I:]
            return torch.bmm(h, W2[k % sets])

        for k in range(3):
            run(k)
        times = []
        for k in range(iters):
            if dev.type == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                run(k)
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
            else:
                import time

                s = time.perf_counter()
                run(k)
                times.append((time.perf_counter() - s) * 1e3)
        rows.append(float(np.median(times)) / G)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    tf = [6 * t * H * I / (ms * 1e-3) / 1e12 if ms > 0 else None for t, ms in zip(tokens, rows)]
    return {"schema": SCHEMA, "hidden": H, "width": I, "dtype": dtype, "experts_in_group": G,
            "method": "torch.bmm per matrix (SwiGLU), G equal groups; median of iters; time / G",
            "device": name, "torch": torch.__version__, "tokens_per_expert": list(tokens),
            "ms_per_expert": rows, "tflops": tf}
