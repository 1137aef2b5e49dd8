"""Measure ranks' expert compute on this GPU: each rank's loads through each kernel, timed alike.

``measure_peaks`` measures the two ceilings of the roofline on the device (a large bf16 matrix
product, a large device-to-device copy). ``measure_loads`` runs a list of ranks (tokens per local
expert) through the kernels named, on one ``ExpertBench`` per expert shape: fresh random inputs
per rank, weights rotated past L2, CUDA events after warm-up, median and p10/p90 of repetitions.
Where ``torch._grouped_mm`` refuses uneven groups, every group is padded to the alignment it asks
for (as torchtitan pads) and the rows say so.

Shape legend: R ranks, G experts of a rank, T tokens of a rank.
"""

from __future__ import annotations

import numpy as np
import torch

from dodoco.compute.features import ExpertShape
from dodoco.compute.kernels import ExpertBench, time_ms

__all__ = ["measure_loads", "measure_peaks", "timing_row"]


def measure_peaks(device="cuda") -> dict:
    """{'tflops': bf16 matmul rate (8192^3, random data), 'hbm_GBps': copy bandwidth (bytes read plus
    written)}, medians on this device; small sizes on the CPU."""
    dev = torch.device(device)
    n = 8192 if dev.type == "cuda" else 512
    a = torch.randn(n, n, device=dev).to(torch.bfloat16)
    b = torch.randn(n, n, device=dev).to(torch.bfloat16)
    mm = float(np.median(time_ms(lambda k: a @ b, dev, warmup=3, min_reps=10, max_reps=20)))
    m = (1 << 29) if dev.type == "cuda" else (1 << 22)
    src = torch.empty(m, dtype=torch.uint8, device=dev).random_()
    dst = torch.empty_like(src)
    cp = float(np.median(time_ms(lambda k: dst.copy_(src), dev, warmup=3, min_reps=10, max_reps=20)))
    return {
        "tflops": 2 * n**3 / (mm * 1e-3) / 1e12,
        "hbm_GBps": 2 * m / (cp * 1e-3) / 1e9,
        "method": f"bf16 matmul {n}^3 and a {m >> 20} MiB device copy, medians",
    }


def timing_row(times) -> dict:
    t = np.asarray(times, dtype=np.float64)
    return {
        "ms": float(np.median(t)),
        "p10_ms": float(np.quantile(t, 0.1)),
        "p90_ms": float(np.quantile(t, 0.9)),
        "reps": int(t.size),
    }


def _first_call(bench: ExpertBench, kernel: str, loads) -> None:
    """Run once; pad groups to the alignment torch._grouped_mm asks for if it refuses uneven ones."""
    x, offs, host = bench.inputs(loads)
    try:
        bench.call(kernel, x, offs, host)
    except RuntimeError as exc:
        if kernel != "grouped_mm" or bench.align > 1 or "align" not in str(exc).lower():
            raise
        bench.align = 16
        x, offs, host = bench.inputs(loads)
        bench.call(kernel, x, offs, host)


def measure_loads(
    shape: ExpertShape,
    ranks,
    kernels,
    device="cuda",
    *,
    progress=None,
    seed: int = 0,
    bench: ExpertBench | None = None,
    **timing,
) -> list[dict]:
    """Time every rank (loads: list of int arrays [G]) through every kernel -> one row per (rank,
    kernel): {index, kernel, experts, tokens, align, ms, p10_ms, p90_ms, reps}; ranks without tokens
    are 0 ms without a launch. ``progress(n)`` is called after each rank."""
    ranks = [np.asarray(r, dtype=np.int64) for r in ranks]
    bench = bench or ExpertBench(shape, max(len(r) for r in ranks), device, seed)
    rows = []
    for i, loads in enumerate(ranks):
        for kernel in kernels:
            base = {"index": i, "kernel": kernel, "experts": int(loads.shape[0]), "tokens": int(loads.sum())}
            if loads.sum() == 0:
                rows.append({**base, "align": bench.align, "ms": 0.0, "p10_ms": 0.0, "p90_ms": 0.0, "reps": 0})
                continue
            _first_call(bench, kernel, loads)
            x, offs, host = bench.inputs(loads, seed + i)
            times = time_ms(lambda k: bench.call(kernel, x, offs, host, k), device, **timing)
            rows.append({**base, "align": bench.align, **timing_row(times)})
        if progress is not None:
            progress(1)
    return rows
