"""Grouped-GEMM tables of the routed experts of the paper's model shapes, measured on this GPU.

One SwiGLU expert of hidden size H and width I; time per expert at t tokens per expert
(``dodoco.simulate.gemm.measure_gemm_table``: G equal groups as one bmm per matrix, weights rotated
past L2, median of the iterations). Writes ``gemm-<gpu>-h<H>-i<I>.json`` per shape under --out;
``dodoco simulate`` uses the shipped table of the exact shape, else the nearest one scaled by FLOPs
(and says so). Run on a GPU machine: ``python bench/bench_gemm.py --out $OUT``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

#: (H, I, models with that routed-expert shape), from the models' own config.json
SHAPES = ((7168, 2048, "DeepSeek-V3 / R1"), (2048, 1408, "DeepSeek-V2-Lite, DeepSeek-MoE-16B"),
          (2048, 768, "Qwen3-30B-A3B"), (2048, 512, "Qwen3.5-35B-A3B"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "src/dodoco/simulate/presets"))
    p.add_argument("--experts", type=int, default=16, help="experts per bmm group (default 16)")
    args = p.parse_args(argv)
    import torch

    from dodoco.simulate.gemm import measure_gemm_table
    from dodoco.store.atomic import write_json

    gpu = torch.cuda.get_device_name(0).split()[-1].lower()
    print(f"{'H':>6} {'I':>6} {'t=256 ms':>9} {'t=4096 ms':>10} {'TFLOP/s @4096':>14}  models")
    for H, I, models in SHAPES:
        t0 = time.perf_counter()
        table = measure_gemm_table(H, I, experts=args.experts)
        table["models"] = models
        table["note"] = f"measured by bench/bench_gemm.py in {time.perf_counter() - t0:.1f} s on {table['device']}"
        write_json(Path(args.out) / f"gemm-{gpu}-h{H}-i{I}.json", table)
        ms, tf = dict(zip(table["tokens_per_expert"], table["ms_per_expert"])), dict(
            zip(table["tokens_per_expert"], table["tflops"]))
        print(f"{H:>6} {I:>6} {ms[256]:>9.4f} {ms[4096]:>10.4f} {tf[4096]:>14.0f}  {models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
