"""What one rank's expert compute depends on, from its per-expert token loads: pure numpy.

A rank holds G experts (physical: replicas included), expert g receiving t_g tokens. One routed
expert is a SwiGLU MLP of hidden size H and width I (docs/compute.md):

    up   = x[t, H] @ W1[H, 2I]          (gate and up projections in one GEMM)
    h    = silu(up[:, :I]) * up[:, I:]
    out  = h[t, I] @ W2[I, H]

so 6*H*I FLOPs per token and 3*H*I weights per expert; or, for Nemotron-H's experts, an ungated
ReLU^2 MLP (act "relu2": up = x @ W1[H, I], h = relu(up)^2), 4*H*I FLOPs and 2*H*I weights. A grouped GEMM computes every expert of the
rank in one launch; a tile of BM rows of one expert is the unit of work, so an expert of t tokens
costs ceil(t / BM) tiles (tile quantisation) and an expert with tokens reads its weights once
(weight reads of non-empty experts). ``features`` turns loads into those quantities; the compute
model (``dodoco.compute.fit``) weighs them.

Shape legend: R ranks (cases), G experts per rank, H hidden size, I expert width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dodoco.errors import DodocoError

__all__ = [
    "ACTS",
    "TORCH_CLUSTER_M",
    "TORCH_SMALL_ROWS",
    "ExpertShape",
    "Features",
    "features",
    "features_many",
    "pad_loads",
    "roofline_ms",
]

GFLOP, GBYTE = 1e9, 1e9
#: torch._grouped_mm on sm90 (aten/src/ATen/native/cuda/GroupMM.cu) runs a 64 x 128 tile (ping-pong) when
#: a GEMM's mean rows per group (rows / groups, empty groups counted) or its N is at most this, else
#: a 128 x 256 tile (cooperative); each regime's (rows, columns) of a tile:
TORCH_SMALL_ROWS = 128
TORCH_TILES = {"small": (64, 128), "large": (128, 256)}
#: both regimes launch clusters of 2 x 1 x 1 CTAs (ClusterShape in GroupMM.cu): CUTLASS's grouped tile
#: scheduler rounds each group's row tiles up to a whole cluster, so an expert's rows are quantised to
#: TORCH_CLUSTER_M tiles (an expert of 17 tokens occupies two 128-row tiles in the large regime)
TORCH_CLUSTER_M = 2


#: expert activations: name -> (label, gated: the up GEMM computes gate and up, 2I columns)
ACTS = {"swiglu": ("SwiGLU", True), "relu2": ("ReLU^2", False)}


@dataclass(frozen=True)
class ExpertShape:
    """A routed expert: hidden size H, width I, bytes per element (2: bf16), activation (``ACTS``:
    "swiglu", gated, or "relu2", Nemotron-H's ungated squared ReLU)."""

    hidden: int
    width: int
    dtype_bytes: int = 2
    act: str = "swiglu"

    def __post_init__(self):
        for key in ("hidden", "width", "dtype_bytes"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= int(v) <= 1 << 20:
                raise DodocoError(
                    f"expert {key} {v!r} must be a whole number in 1..{1 << 20}: give e.g. --hidden 7168 --width 2048"
                )
        if self.act not in ACTS:
            raise DodocoError(
                f"expert activation {self.act!r} is not one of {', '.join(ACTS)}: give --act swiglu or --act relu2"
            )

    @classmethod
    def of(cls, d: dict) -> "ExpertShape":
        """The shape a row or file records ({hidden, width[, act]}; no act: SwiGLU, as before acts existed)."""
        return cls(d["hidden"], d["width"], act=d.get("act", "swiglu"))

    def to_dict(self) -> dict:
        """{hidden, width, act}: what ``of`` reads back."""
        return {"hidden": self.hidden, "width": self.width, "act": self.act}

    @property
    def up_width(self) -> int:
        """Columns of the up GEMM: 2I when gated (gate and up in one GEMM), else I."""
        return (2 if ACTS[self.act][1] else 1) * self.width

    @property
    def gemms(self) -> tuple[tuple[int, int], ...]:
        """(N, K) of the two GEMMs of an expert: up [H -> 2I or I] and down [I -> H]."""
        return ((self.up_width, self.hidden), (self.hidden, self.width))

    @property
    def flops_per_token(self) -> int:
        return 2 * self.hidden * (self.up_width + self.width)

    @property
    def weight_bytes(self) -> int:
        """Bytes of one expert's weights (W1 and W2)."""
        return self.hidden * (self.up_width + self.width) * self.dtype_bytes

    @property
    def act_bytes_per_token(self) -> int:
        """Activation bytes per token: x read, up written and read, h written and read, out written."""
        return (2 * self.hidden + 2 * self.up_width + 2 * self.width) * self.dtype_bytes

    def label(self) -> str:
        return f"{ACTS[self.act][0]} H={self.hidden} I={self.width}"


def pad_loads(loads) -> tuple[np.ndarray, np.ndarray]:
    """Per-rank expert loads (a list of R lists, or an int array [R, G]) -> (t int64 [R, G], valid
    bool [R, G]): ragged ranks padded with 0 and marked invalid. DodocoError for negative,
    fractional, empty or non-numeric loads."""
    if isinstance(loads, np.ndarray) and loads.ndim == 2:
        rows = list(loads)
    elif isinstance(loads, (list, tuple)) and all(isinstance(r, (list, tuple, np.ndarray)) for r in loads):
        rows = list(loads)
    else:
        raise DodocoError(
            "loads must be a list of lists: tokens per local expert, one list per rank, "
            "e.g. [[120, 0, 64], [30, 30, 30]]"
        )
    if not rows:
        raise DodocoError("loads hold no rank: give one list of tokens per local expert for each rank")
    if any(len(r) == 0 for r in rows):
        raise DodocoError("loads hold an empty rank: every rank needs at least one expert (0 tokens is fine)")
    G = max(len(r) for r in rows)
    t = np.zeros((len(rows), G), dtype=np.int64)
    valid = np.zeros((len(rows), G), dtype=bool)
    for i, r in enumerate(rows):
        a = np.asarray(r)
        if a.ndim != 1 or a.dtype.kind not in "iuf" or (a.dtype.kind == "f" and not np.all(np.isfinite(a))):
            raise DodocoError(f"loads of rank {i} are not a list of numbers: give whole token counts")
        if a.dtype.kind == "f" and np.any(a != np.round(a)):
            raise DodocoError(f"loads of rank {i} hold a fraction ({a[a != np.round(a)][0]}): give whole tokens")
        if np.any(a < 0) or np.any(a > 1 << 40):
            raise DodocoError(
                f"loads of rank {i} hold {a.min() if np.any(a < 0) else a.max()}: "
                f"tokens per expert must be in 0..{1 << 40}"
            )
        t[i, : a.shape[0]] = a.astype(np.int64)
        valid[i, : a.shape[0]] = True
    return t, valid


@dataclass(frozen=True)
class Features:
    """Features of R ranks: ``case[name]`` float64 [R]; ``gemm[name]`` [R, 2] (up, down GEMM);
    ``group[name]`` [R, 2G] (each expert's two GEMMs). Units: GFLOP, GB, tiles, ms-free counts."""

    case: dict
    gemm: dict
    group: dict


def _tiles(t: np.ndarray, bm: int) -> np.ndarray:
    return -(-t // bm)


def features(t, valid, shape: ExpertShape, tile_m: int = 128, tile_n: int = 128, sms: int = 132) -> Features:
    """Features of ranks with loads t[R, G] (valid[R, G] marks real experts) for one expert shape.

    case: one, tokens, groups, nonempty, flops (GFLOP, unpadded), pflops (GFLOP with each expert's
    rows rounded up to tile_m), wbytes (GB of weights of non-empty experts), abytes (GB of
    activations), pflops64 / pflops128 / pflops256 (padded FLOPs at each tile height), and torch's
    own tile choice (``torch_tiles``); gemm: the same per GEMM plus waves (ceil(tiles / sms) * K, the
    latency of full waves of tile_m x tile_n tiles, K-steps); group: per expert and GEMM, wbytes and
    pflops.
    """
    t = np.where(valid, np.asarray(t, dtype=np.int64), 0)
    ne = (t > 0) & valid
    rows = _tiles(t, tile_m) * tile_m  # [R, G] rows after tile quantisation
    db = shape.dtype_bytes
    g_wb, g_pf, waves = [], [], []
    for n, k in shape.gemms:
        g_wb.append(ne * (n * k * db / GBYTE))
        g_pf.append(rows * (2.0 * n * k / GFLOP))
        tiles = (_tiles(t, tile_m) * -(-n // tile_n)).sum(-1)
        waves.append(-(-tiles // sms) * float(k) / 1e3)
    gemm = {
        "wbytes": np.stack([w.sum(-1) for w in g_wb], -1),
        "pflops": np.stack([p.sum(-1) for p in g_pf], -1),
        "waves": np.stack(waves, -1),
    }
    tok = t.sum(-1).astype(np.float64)
    case = {
        "one": np.ones(t.shape[0]),
        "tokens": tok,
        "groups": valid.sum(-1).astype(np.float64),
        "nonempty": ne.sum(-1).astype(np.float64),
        "flops": tok * shape.flops_per_token / GFLOP,
        "pflops": gemm["pflops"].sum(-1),
        "wbytes": gemm["wbytes"].sum(-1),
        "abytes": tok * shape.act_bytes_per_token / GBYTE,
        "waves": gemm["waves"].sum(-1),
    }
    for bm in (64, 128, 256):  # padded FLOPs at each tile height a grouped GEMM may pick
        case[f"pflops{bm}"] = (_tiles(t, bm) * bm).sum(-1) * (shape.flops_per_token / GFLOP)
    case.update(torch_tiles(t, valid, shape, sms))
    group = {
        "wbytes": np.concatenate(g_wb, -1),
        "pflops": np.concatenate(g_pf, -1),
        "one": np.concatenate([ne, ne], -1).astype(np.float64),
    }
    return Features(case, gemm, group)


def torch_tiles(t: np.ndarray, valid: np.ndarray, shape: ExpertShape, sms: int) -> dict:
    """The tile torch._grouped_mm picks for each GEMM of ranks with loads t[R, G] (``TORCH_TILES``), each
    expert's row tiles rounded up to a cluster of ``TORCH_CLUSTER_M``, as case features [R]: ``small`` /
    ``large`` (the share of the two GEMMs in each regime, a launch constant each), and per regime
    ``pflops_<regime>`` (GFLOP with rows padded to whole clusters of tiles and columns to the tile) and
    ``waves_<regime>`` (ceil(tiles / sms) * K / 1e3: full waves of its tiles, K-steps)."""
    rows_per_group = t.sum(-1) / np.maximum(valid.sum(-1), 1)
    out = {k: np.zeros(t.shape[0]) for r in TORCH_TILES for k in (r, f"pflops_{r}", f"waves_{r}")}
    for n, k in shape.gemms:
        small = (rows_per_group <= TORCH_SMALL_ROWS) | (n <= TORCH_SMALL_ROWS)
        for regime, on in (("small", small), ("large", ~small)):
            bm, bn = TORCH_TILES[regime]
            row_tiles = _tiles(t, TORCH_CLUSTER_M * bm).sum(-1) * TORCH_CLUSTER_M  # [R]
            out[regime] += 0.5 * on
            out[f"pflops_{regime}"] += on * row_tiles * bm * (2.0 * -(-n // bn) * bn * k / GFLOP)
            out[f"waves_{regime}"] += on * -(-(row_tiles * -(-n // bn)) // sms) * (k / 1e3)
    return out


def features_many(t, valid, shapes, tile_m: int = 128, tile_n: int = 128, sms: int = 132) -> Features:
    """``features`` of ranks of several expert shapes: t, valid [R, G]; shapes[R] ExpertShape -> Features."""
    t, valid = np.asarray(t), np.asarray(valid)
    R = t.shape[0]
    out = None
    for shape in dict.fromkeys(shapes):
        rows = np.array([s == shape for s in shapes])
        f = features(t[rows], valid[rows], shape, tile_m, tile_n, sms)
        if out is None:
            out = Features(
                *({k: np.zeros((R,) + v.shape[1:]) for k, v in part.items()} for part in (f.case, f.gemm, f.group))
            )
        for mine, theirs in zip((out.case, out.gemm, out.group), (f.case, f.gemm, f.group)):
            for k, v in theirs.items():
                mine[k][rows] = v
    return out


def roofline_ms(t, valid, shape: ExpertShape, tflops: float, hbm_GBps: float) -> np.ndarray:
    """The physical floor of ranks with loads t[R, G]: max(FLOPs / peak, bytes / HBM bandwidth) in ms,
    FLOPs unpadded (``flops_per_token`` a token), bytes the non-empty experts' weights read once plus each
    token's input read and output written (2 H elements) -> float64 [R]."""
    t = np.where(valid, np.asarray(t, dtype=np.int64), 0)
    tok = t.sum(-1).astype(np.float64)
    flops = tok * shape.flops_per_token
    nbytes = (t > 0).sum(-1) * shape.weight_bytes + tok * 2 * shape.hidden * shape.dtype_bytes
    return np.maximum(flops / (tflops * 1e12), nbytes / (hbm_GBps * 1e9)) * 1e3
