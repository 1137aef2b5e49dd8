"""The one home of DODOCO's defaults: EP degrees, batch sizes, placements, dispatchers and shapes.

Every config, API function and command takes its default from here, so that a default changed here
changes everywhere (docs/architecture.md).

Shape legend: E routed experts, N EP ranks, B sequences per rank per step, H hidden size.
"""

from __future__ import annotations

from dodoco.errors import did_you_mean

__all__ = [
    "BAND_GROUPS",
    "BAND_HIGH",
    "BAND_LOW",
    "BATCHES",
    "DECODE_POSITIONS",
    "INVARIANCE_THRESHOLD",
    "N_BOOT",
    "REF_BATCH",
    "DISPATCHERS",
    "DTYPE",
    "DTYPE_BYTES",
    "EP",
    "EXPERT_WIDTH",
    "HIDDEN",
    "NOMINAL_LINK_GBPS",
    "PLACEMENT",
    "PLACEMENTS",
    "SIMULATE_EP",
    "default_eps",
    "dtype_bytes",
]

#: The paper's EP degrees N (scans add every larger power of two up to E: ``default_eps``).
EP = (4, 8, 16, 32)
#: Sequences per rank per step B of the per-step metrics and scans.
BATCHES = (1, 2, 4, 8, 16, 32)
#: EP degrees of ``dodoco simulate`` (larger than one node).
SIMULATE_EP = (8, 16, 32, 64, 128, 256)
#: The layout every analysis uses unless told otherwise, and the placements the findings compare.
PLACEMENT = "contiguous"
PLACEMENTS = ("contiguous", "round_robin", "eplb")
#: Dispatchers replayed unless told otherwise.
DISPATCHERS = ("nccl",)
#: Row shape of replays, exports and simulations: H (Qwen3-30B-A3B's 2048; DeepSeek-V3 has 7168),
#: element type, and the expert's intermediate width.
HIDDEN = 2048
DTYPE = "bf16"
EXPERT_WIDTH = 768
#: Row element types, with their sizes in bytes.
DTYPE_BYTES = {"bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2, "fp32": 4, "float32": 4, "fp8": 1}
#: The verdicts' thresholds (docs/findings.md): the batch of the bands and the mock/real ratio, the
#: largest relative change of the per-expert max/mean over N called "intrinsic", the real-text Gini
#: of data-resilient (<= BAND_LOW) and persistently concentrated (>= BAND_HIGH) models, and the number
#: of data-derived groups.
REF_BATCH = 8
INVARIANCE_THRESHOLD = 0.05
BAND_LOW, BAND_HIGH = 0.15, 0.24
BAND_GROUPS = 2
#: Bootstrap resamples of every interval over steps.
N_BOOT = 1000
#: Decode positions per sequence of the decode regime.
DECODE_POSITIONS = 4
#: Nominal per-direction NVLink4 bandwidth of H100/H200 (GB/s), used when no measured value is given.
NOMINAL_LINK_GBPS = 450.0


def default_eps(E: int) -> list[int]:
    """EP degrees scanned by default: EP (4, 8, 16, 32) and every larger power of two up to E."""
    eps, n = set(EP), 2 * max(EP)
    while n <= E:
        eps.add(n)
        n *= 2
    return sorted(e for e in eps if e <= max(E, min(EP)))


def dtype_bytes(name: str) -> int:
    """Bytes of one element of ``name`` (did-you-mean DodocoError for an unknown type)."""
    if name not in DTYPE_BYTES:
        raise did_you_mean("dtype", name, DTYPE_BYTES)
    return DTYPE_BYTES[name]
